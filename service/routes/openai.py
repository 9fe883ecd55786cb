"""Routes: openai."""

from fastapi import APIRouter

router = APIRouter()
