"""Programs that turn folders of audio into manifests and demo corpora."""
