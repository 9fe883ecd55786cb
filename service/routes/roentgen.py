"""Routes: roentgen."""

from fastapi import APIRouter

router = APIRouter()
