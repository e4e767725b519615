"""How the sandbox refuses an AWS call: with AWS's own error code and message."""

from __future__ import annotations


class AwsRefusal(Exception):
    """The call is refused as AWS would refuse it: `code` is AWS's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
