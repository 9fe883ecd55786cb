"""Routes: medval."""

from fastapi import APIRouter

router = APIRouter()
