"""Code shared by the shipped submissions (optimizers, train steps); not a submission."""
