"""Pydantic bases for request and response bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, UrlConstraints


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields, so nobody can set what they should not."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    """Response bodies are built from ORM objects or dicts by the services."""

    model_config = ConfigDict(from_attributes=True)


def _fits_column(url: AnyHttpUrl) -> AnyHttpUrl:
    # Checked after normalisation: percent-encoding can make a URL several times longer.
    if len(str(url)) > 2048:
        raise ValueError("the URL is longer than 2048 characters once encoded")
    return url


WebUrl = Annotated[
    AnyHttpUrl,
    UrlConstraints(max_length=2048, allowed_schemes=["https", "http"]),
    AfterValidator(_fits_column),
]
"""An http(s) URL that fits a 2048-character column once encoded."""
