"""The harness's own exceptions. Every message names the file, field or sample,
what was found and what was expected."""


class NeuroharnessError(Exception):
    """Base class of every error the harness raises on purpose."""


class UsageError(NeuroharnessError, ValueError):
    """A bad command-line value: malformed ``--option``/``--hyperparameter``, an option
    the task does not have, a negative seed, an output path that is a file, ...

    The command line prints these as ``usage error: ...`` (exit status 2); errors
    found in data (files, stores, records) stay :class:`DataFormatError`,
    :class:`SubmissionError`, ... and print as ``error: ...``.
    """


class UnknownNameError(NeuroharnessError, KeyError):
    """A dataset, task or model name that is not registered."""

    def __init__(self, kind: str, name: str, valid):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataFormatError(NeuroharnessError, ValueError):
    """A source file that is missing, unreadable or not in the expected layout."""


class ChecksumError(NeuroharnessError):
    """A downloaded or local file whose sha256 differs from the pinned one."""


class CacheError(NeuroharnessError):
    """The cache (``$NEUROHARNESS_HOME``) cannot be created or written."""


class DownloadError(NeuroharnessError):
    """A download that failed after retries."""


class SubmissionError(NeuroharnessError, ValueError):
    """A predictions file that does not follow the task's submission format."""


class IncomparableResultsError(NeuroharnessError):
    """Result records that must not be ranked together."""
