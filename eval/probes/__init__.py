"""Measurement programs each made for one question, kept so their figures can be remade.

- ``eval.probes.band_worth``: what each frequency band of decoded speech is worth to
  PESQ and STOI;
- ``eval.probes.substitute``: which part of decoded speech (levels, magnitudes, bands,
  envelope, fine structure) costs its PESQ and STOI;
- ``eval.probes.speech_edits``: the scoring and options those two share;
- ``eval.probes.weight_ema_cost``: what the training weight average costs per step;
- ``eval.probes.contention``: training speed when other programs share the cores.
"""
