"""Programs that turn folders of audio into manifests and demo corpora.

- ``python -m data_prep.manifest DIR ... -o OUT_DIR``: scan, measure (BS.1770 loudness,
  peak), skip bad files with a reason, split by group -> train/valid/test JSONL.
- ``python -m data_prep.demo_corpus OUT_DIR``: about 25 minutes of speech (espeak-ng,
  festival) and music (Debian game soundtracks), or synthetic audio without them.

Modules: probe (one file; its BS.1770 meter is codec.audio.StreamingLoudness), split
(groups and strata), texts and synth (material for the demo corpus).
"""
