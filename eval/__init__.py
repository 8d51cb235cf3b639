"""Programs that measure trained models, and the parts they share.

Programs (``python -m eval.X``):

- ``eval.evaluate``: metrics on a set of files at several bitrates, against Opus,
  with rate-distortion curves and an HTML report (``eval.report`` rebuilds the page);
- ``eval.compare``: the metrics of one decoded file against its original;
- ``eval.levels``: where the decoded level departs from the input's, per frequency band
  and per frame loudness;
- ``eval.versus_opus``, ``eval.finetune_table``: tables read from evaluations;
- ``eval.diagnostics``: what the encoder's latents carry, over a run's checkpoints;
- ``eval.bench``: speed and memory of a codec, beside EnCodec's architecture.

Shared parts: ``eval.coding`` (coding files as a user does, and the options of the
commands that do), ``eval.dataset`` (the files to measure), ``eval.excerpts`` (what to
listen to), ``eval.opus``, ``eval.breakdown``, ``eval.rate_distortion``,
``eval.spectrograms`` and ``eval.results`` (CSV, JSON, text and Markdown tables).

``eval.probes`` holds programs each made for one question.
"""
