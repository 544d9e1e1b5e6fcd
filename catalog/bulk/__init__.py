"""Bulk upload: many photos (one request each, or a zip) with an optional CSV of metadata.

1. Receive (`receive`): every file is stored in the batch's staging folder as it arrives, before anything
   else; only what is a photo is staged.
2. Check (`check`, the dry run, on a worker): the CSV is read (`plan`), each row matched to a photo, every
   photo fully decoded; each bad row or photo is listed with its reason, in the words a single upload uses
   (the same validators). Nothing enters the catalogue. A corrected CSV can be sent and checked again.
3. Import (`importing`, on a worker, only once the check found nothing wrong): one transaction per photo
   (sighting, photo, annotation, individual), so a killed worker resumes where it stopped and nothing is
   imported twice. It acts with the rights of the user who started it.
4. Once every photo has its annotation, `batch_imported` is sent and identification matches the batch's
   unidentified animals, so siblings identified in the same batch are already in the catalogue.

`services` is what the views, the API and the import command call (permission-checked); the workers run
`check.run` and `importing.run` (catalog.tasks).
"""
