"""Routes: medvae."""

from fastapi import APIRouter

router = APIRouter()
