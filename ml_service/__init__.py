"""The machine learning itself: detection, segmentation, embeddings, local features and matchers, fusion
and calibration, training and evaluation metrics. Imports no Django (tests/ml_service enforce it), so it
runs in workers, notebooks and command-line tools alike."""
