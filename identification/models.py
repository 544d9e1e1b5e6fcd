"""Match jobs and their candidates; embeddings and local features stored per model/extractor version."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from pgvector.django import HalfVectorField

from catalog.models import Annotation, Individual


class EmbeddingSpace(models.Model):
    """One embedding model version. Vectors of different spaces are never compared."""

    key = models.CharField(max_length=120, unique=True)  # "<model name>@<version>"
    model_name = models.CharField(max_length=80)
    version = models.CharField(max_length=80)
    dim = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    model_path = models.CharField(
        max_length=300, blank=True, help_text="A fine-tuned model's file, relative to RESIGHT_MODELS_DIR"
    )
    training_run = models.ForeignKey(
        "TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reembed_total = models.PositiveIntegerField(default=0)
    reembedded = models.PositiveIntegerField(default=0)
    ready_at = models.DateTimeField(null=True, blank=True, help_text="When the catalogue was fully embedded")
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    error = models.TextField(blank=True, help_text="Why re-embedding into this space stopped, if it did")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_embedding_space"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class AnnotationEmbedding(models.Model):
    """A global embedding of one annotation in one space, as halfvec (pgvector).

    Each space gets its own partial HNSW index on `vector::halfvec(dim)` (identification.matching.search); the
    filter columns are copied from the annotation so the index scan can filter without joins."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="embeddings")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="embeddings")
    vector = HalfVectorField()
    project_id = models.BigIntegerField(db_index=True)
    species_id = models.BigIntegerField()
    viewpoint = models.CharField(max_length=10)
    body_part = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotation", "space"], name="one_embedding_per_space"),
        ]
        indexes = [models.Index(fields=["space", "species_id"])]

    def __str__(self) -> str:
        return f"annotation {self.annotation_id} in {self.space_id}"


class LocalFeatureSet(models.Model):
    """Keypoints and descriptors of one annotation for one extractor version, stored as .npz in media."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="local_features")
    extractor = models.CharField(max_length=120)
    file = models.FileField(upload_to="features/", max_length=300)
    keypoints = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotation", "extractor"], name="one_feature_set_per_extractor"),
        ]

    def __str__(self) -> str:
        return f"{self.extractor} features of annotation {self.annotation_id}"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    EMBEDDING = "embedding", "Embedding"
    SEARCHING = "searching", "Searching"
    RERANKING = "reranking", "Re-ranking"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE_STATES = (JobState.EMBEDDING, JobState.SEARCHING, JobState.RERANKING)
FINAL_STATES = (JobState.DONE, JobState.FAILED)


class MatchJob(models.Model):
    """Find the known individuals one annotation may be. States move forward only
    (identification.matching.jobs)."""

    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="match_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.PROTECT, related_name="+")
    matcher = models.CharField(max_length=120, blank=True, help_text="Local matcher key; empty: global only")
    shortlist_size = models.PositiveIntegerField(default=20)
    project_ids = models.JSONField(default=list, help_text="Projects searched (the requester's match rights)")
    filters = models.JSONField(default=dict, blank=True)
    probably_new = models.BooleanField(null=True)
    loose_box = models.BooleanField(
        default=False, help_text="The query's box was the whole of an uncropped photo when it was ranked"
    )
    search_report = models.JSONField(
        default=dict,
        blank=True,
        help_text="What was searched: the catalogue in scope and how many photos each filter left out",
    )
    ranked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the candidates were last ranked (a job is re-ranked when the catalogue changes)",
    )
    top_probability = models.FloatField(
        null=True, blank=True, help_text="Of the first candidate: orders the queue"
    )
    attempts = models.PositiveIntegerField(default=0)
    claimed_by = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    policy_project_path = "annotation__media_asset__project"
    policy_species_path = "annotation__species"
    policy_place_path = "annotation__sighting__"  # to its sighting's position

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Match job {self.pk} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class MatchCandidate(models.Model):
    """One ranked candidate individual of a job, with the evidence and versions that produced it."""

    job = models.ForeignKey(MatchJob, on_delete=models.CASCADE, related_name="candidates")
    rank = models.PositiveIntegerField()
    individual = models.ForeignKey(Individual, on_delete=models.CASCADE, related_name="+")
    annotation = models.ForeignKey(
        Annotation,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The individual's best-matching annotation",
    )
    global_score = models.FloatField(help_text="Cosine similarity")
    local_score = models.FloatField(null=True, blank=True, help_text="Verified local matches (inliers)")
    match_count = models.PositiveIntegerField(null=True, blank=True, help_text="Tentative local matches")
    probability = models.FloatField(help_text="Calibrated P(same individual)")
    band = models.CharField(max_length=10)
    model_key = models.CharField(max_length=120)
    matcher_key = models.CharField(max_length=120, blank=True)
    keypoint_pairs = models.JSONField(
        default=list,
        blank=True,
        help_text="Verified local matches: [x1, y1, x2, y2] in query and candidate photo pixels",
    )

    class Meta:
        ordering = ["job", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["job", "rank"], name="candidate_rank_unique"),
            models.UniqueConstraint(fields=["job", "individual"], name="candidate_individual_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.individual_id} p={self.probability:.2f}"


class SpeciesCalibration(models.Model):
    """Fusion calibration of one species for an embedding space and local matcher, fitted on curated pairs."""

    species = models.ForeignKey("catalog.Species", on_delete=models.CASCADE, related_name="+")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="+")
    matcher = models.CharField(max_length=120, blank=True)
    params = models.JSONField()
    pairs = models.PositiveIntegerField()
    positives = models.PositiveIntegerField()
    identified_annotations = models.PositiveIntegerField(help_text="Curated annotations at the fit")
    fitted_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["species", "space", "matcher"], name="one_calibration_per_setup"),
        ]

    def __str__(self) -> str:
        return f"calibration of species {self.species_id} ({self.pairs} pairs)"


class DecisionKind(models.TextChoices):
    CONFIRM = "confirm", "Confirmed match"
    NEW_INDIVIDUAL = "new_individual", "New individual"
    NOT_THIS_ONE = "not_this_one", "Not this one"
    SKIP = "skip", "Skipped"
    UNIDENTIFIABLE = "unidentifiable", "Unidentifiable"
    UNDO = "undo", "Undone"


class Decision(models.Model):
    """A curator's decision on an annotation, with exactly what was shown. Append-only (a database trigger
    refuses UPDATE and DELETE): corrections are new decisions."""

    # No cascades into an append-only table (the trigger would refuse them and block the deletion of what
    # they point at): references are kept as they were when decided.
    annotation = models.ForeignKey(
        Annotation, on_delete=models.DO_NOTHING, db_constraint=False, related_name="decisions"
    )
    job = models.ForeignKey(
        MatchJob,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="decisions",
    )
    kind = models.CharField(max_length=20, choices=DecisionKind.choices)
    candidate_rank = models.PositiveIntegerField(null=True, blank=True)
    undoes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="For an undo: the decision it reverts",
    )
    individual = models.ForeignKey(
        Individual,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="The annotation's individual after the decision",
    )
    previous_individual_id = models.BigIntegerField(null=True, blank=True)
    shown = models.JSONField(default=list, help_text="The candidates, scores and bands the curator saw")
    model_key = models.CharField(max_length=120, blank=True)
    matcher_key = models.CharField(max_length=120, blank=True)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    decided_at = models.DateTimeField(auto_now_add=True)

    policy_project_path = "annotation__media_asset__project"
    policy_species_path = "annotation__species"
    policy_place_path = "annotation__sighting__"  # to its sighting's position

    class Meta:
        ordering = ["-decided_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on annotation {self.annotation_id}"


class ReviewClaim(models.Model):
    """Who is reviewing an annotation right now: the queue hands it to nobody else until `expires_at`."""

    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="review_claim")
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"annotation {self.annotation_id} claimed by {self.claimed_by_id}"


class IdentityChangeKind(models.TextChoices):
    MERGE = "merge", "Merge"
    SPLIT = "split", "Split"
    UNDO = "undo", "Undo"


class IdentityChange(models.Model):
    """A merge or split of individuals (or the undo of one), with exactly which annotations moved.
    Append-only (database trigger): an undo is a new row pointing at what it reverts."""

    kind = models.CharField(max_length=10, choices=IdentityChangeKind.choices)
    # Merge: `individual` went into `other`. Split: `annotation_ids` left `individual` for the new `other`.
    individual = models.ForeignKey(
        Individual, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    other = models.ForeignKey(Individual, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    annotation_ids = models.JSONField(default=list, help_text="The annotations that moved")
    previous_status = models.CharField(max_length=10, blank=True, help_text="Merge: the source's status")
    undoes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    preview = models.JSONField(default=dict, blank=True, help_text="The consequences shown before it")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    policy_project_path = "individual__project"
    policy_species_path = "individual__species"
    policy_place_path = "individual__annotations__sighting__"  # to its sighting's position

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.individual_id} and {self.other_id}"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXPORTING = "exporting", "Exporting the curated set"
    TRAINING = "training", "Training"
    EVALUATING = "evaluating", "Evaluating"
    REJECTED = "rejected", "Not better: kept the active model"
    REEMBEDDING = "reembedding", "Re-embedding the catalogue"
    DONE = "done", "Promoted and active"
    FAILED = "failed", "Failed"


RUN_WORKING_STATES = (
    RunState.QUEUED,
    RunState.EXPORTING,
    RunState.TRAINING,
    RunState.EVALUATING,
    RunState.REEMBEDDING,
)


class TrainingRun(models.Model):
    """One retraining: curated set -> training -> evaluation against the active model on the same split ->
    promotion (re-embedding, then the switch) or rejection (identification.registry.retraining)."""

    state = models.CharField(max_length=12, choices=RunState.choices, default=RunState.QUEUED)
    trigger = models.CharField(max_length=20, default="threshold")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    curated_annotations = models.PositiveIntegerField(help_text="Identified annotations when it started")
    species_counts = models.JSONField(default=dict, blank=True, help_text="{species: {individuals, photos}}")
    split = models.JSONField(default=dict, blank=True)
    config = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="Per epoch: loss, lr, seconds, images/s")
    metrics = models.JSONField(default=dict, blank=True, help_text="{active, candidate}: per species group")
    compared_with = models.ForeignKey(
        EmbeddingSpace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    candidate = models.ForeignKey(
        EmbeddingSpace, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_by = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Training run {self.pk} ({self.get_state_display()})"

    @property
    def folder_name(self) -> str:
        # The fine-tuned model's version is its folder's name, so keep it stable and unique.
        return f"run-{self.pk}"
