"""Identification: what the platform computes about who an animal is, and what curators decide.

Three rooms, each a package:
- `matching`: from an annotation to ranked candidates. Embedding spaces (`spaces`), the models a worker
  loads (`loaded`), the pixels matching sees (`crops`), vectors and local features stored (`store`),
  pgvector search (`search`), per-species calibration (`calibration`), the job state machine (`jobs`) and
  the pipeline that runs a job (`pipeline`); `services` starts jobs, `selectors` reads them, `views` shows
  them.
- `curation`: what curators do with candidates. Decisions and undo (`decisions`), merges and splits
  (`identities`), the review queue (`review`), their reads (`selectors`) and pages (`views`).
- `registry`: the life of the model. Retraining on curated identities (`retraining`), the registry page
  (`views`), its plots and reads.

Around them: the models (`models`), the REST API (`api`), the Celery tasks (`tasks`, thin and id-based)
and the one place the catalogue's signals are received (`receivers`).
"""
