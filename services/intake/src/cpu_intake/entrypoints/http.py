"""HTTP routes of the intake service under ``/api/v1``."""

from fastapi import APIRouter

router = APIRouter(tags=["intake"])
