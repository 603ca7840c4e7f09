"""What a run folder holds, as the tests that train for real check it."""

# What a finished run leaves (one process's, or a multi-worker job's chief's), sorted.
FINISHED_RUN = ["backup", "config.json", "curves.png", "metrics.json", "model.keras", "tensorboard"]
