"""Routes: oip."""

from fastapi import APIRouter

router = APIRouter()
