"""Programs that measure trained models.

- ``eval.evaluate``: metrics on a set of files at several bitrates, against Opus,
  with rate-distortion curves and an HTML report;
- ``eval.compare``: the metrics of one decoded file against its original;
- ``eval.diagnostics``: what the encoder's latents carry, over a run's checkpoints;
- ``eval.opus``, ``eval.rate_distortion``, ``eval.report``, ``eval.dataset``,
  ``eval.results``: the parts they share.
"""
