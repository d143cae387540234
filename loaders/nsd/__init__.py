"""NSD fMRI as packaged by the Algonauts 2023 challenge (dataset ``nsd-algonauts2023``)."""
