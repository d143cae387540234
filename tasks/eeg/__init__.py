"""Schizophrenia EEG tasks: ``eeg-schizophrenia`` (patient vs control, one prediction per subject, from
fixed-length windows of the ``nszed`` and ``repod-schizophrenia`` stores; within-site subject-wise
cross-validation or cross-site)."""
