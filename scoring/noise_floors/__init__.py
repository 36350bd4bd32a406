"""Reference noise floors shipped with scoring: ``<hardware_class>.json``.

Each file is a noise-floor file as ``timetrial noise`` writes it
(``harness.results.write_noise_floors``). Scoring falls back on it when neither
``--noise-floor FILE`` nor this machine's own measurement exists
(``scoring.noise_floor``). A package, so that its JSON files are installed with
scoring.
"""
