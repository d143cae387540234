"""VesselGraph tasks: link prediction (``link_prediction`` + ``link_baselines``) and vessel classification
(``vessel_classification`` + ``classification_baselines``); cards in ``cards``."""
