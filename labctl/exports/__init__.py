"""What an instructor keeps of a cohort before deleting it.

:mod:`.cohort` writes the definitions, grade history and gradebook; :mod:`.stacks` saves each
learner's stack data from their running pods through :mod:`.mlflow_dump` (the tracking server
and model registry, through MLflow's REST API) and :mod:`.bucket_dump` (every bucket of the
S3-compatible store). Each dump writes a fresh folder with a stable, documented layout and
returns a summary; any failure is a :class:`~labctl.exports._files.DumpError` naming the learner
and endpoint, raised before the caller deletes anything.
"""
