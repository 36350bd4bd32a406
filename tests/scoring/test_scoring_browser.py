"""report.html in a real browser: every image decodes and every table is there.

Needs Debian's chromium (`apt-get install -y --no-install-recommends chromium`);
skipped with that hint when it is absent. A copy of the report gets a small script
that, on the load event, writes what it found into the DOM; ``--dump-dom`` prints it.
"""

import json
import re
import shutil
import subprocess

import pytest

from scoring.api import score
from scoring.report import report_contents
from scoring_fixtures import study_table

pytestmark = pytest.mark.browser

CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var result = {
    images: images.map(function (i) {
      return {alt: i.alt, ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth};
    }),
    tables: Array.prototype.slice.call(document.querySelectorAll('table')).map(function (t) {
      return {id: t.id, rows: t.rows.length};
    })
  };
  var out = document.createElement('pre');
  out.id = 'browser-check';
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def _chromium():
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip('chromium not installed: apt-get install -y --no-install-recommends chromium')


def test_report_images_load_and_tables_are_present(tmp_path):
    browser = _chromium()
    exp = study_table(
        tmp_path / 'results',
        {
            ('adamw', 'mnist'): [20, 30, 40],
            ('adamw', 'mnist-wide'): [30, 30, None],
            ('sgd', 'mnist'): [40, 50, 60],
            ('sgd', 'mnist-wide'): [None, 40, None],
            ('adamw', 'lm'): [None, 90, 100],
            ('sgd', 'lm'): [70, 80, 80],
        },
    )
    rep = score(exp, out_dir=tmp_path / 'out', bootstrap_samples=50)
    html = (tmp_path / 'out' / 'report.html').read_text(encoding='utf-8')
    checked = tmp_path / 'checked.html'
    checked.write_text(html.replace('</body>', CHECK_SCRIPT + '</body>'), encoding='utf-8')
    command = [
        browser,
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        f'--user-data-dir={tmp_path / "profile"}',
        '--virtual-time-budget=10000',
        '--dump-dom',
        checked.as_uri(),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="browser-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f'no check result in the DOM; stderr:\n{proc.stderr[-2000:]}'
    found = json.loads(match.group(1).replace('&quot;', '"').replace('&amp;', '&'))
    expected = report_contents(rep)
    assert sorted(i['alt'] for i in found['images']) == sorted(expected['images'])
    broken = [i for i in found['images'] if not i['ok']]
    assert not broken, broken
    tables = {t['id']: t['rows'] for t in found['tables']}
    assert set(expected['tables']) <= set(tables)
    assert all(rows >= 2 for rows in tables.values()), tables  # a header and data
