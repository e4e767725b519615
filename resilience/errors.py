"""The suite's own errors.

"The input is wrong" (a manifest, a plan, a CLI flag) is kept apart from "the
system under test misbehaved": the first is the user's to fix and gets a
one-line answer naming the file and field; the second is a finding.
"""


class ResilienceError(Exception):
    """Base of every error the suite raises on purpose."""


class InvalidInputError(ResilienceError):
    """Something the user gave us is wrong; the message names what and where."""


class ManifestError(InvalidInputError):
    """A manifest cannot be read, rendered or validated."""


class PolicyError(InvalidInputError):
    """The rendered manifests do not describe a policy the suite can check."""
