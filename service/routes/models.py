"""Routes: models."""

from fastapi import APIRouter

router = APIRouter()
