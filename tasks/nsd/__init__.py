"""NSD fMRI encoding tasks on the Algonauts 2023 data (``nsd-encoding``): cards, task, baselines."""
