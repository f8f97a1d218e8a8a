"""Pydantic bases for request and response bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """Request bodies refuse unknown fields, so nobody can set what they should not."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    """Response bodies are built from ORM objects or dicts by the services."""

    model_config = ConfigDict(from_attributes=True)
