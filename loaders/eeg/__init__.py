"""EEG datasets read through MNE and described by layout files: NSzED and the RepOD schizophrenia set."""
