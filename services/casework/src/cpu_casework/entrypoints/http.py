"""HTTP routes of the casework service under ``/api/v1``."""

from fastapi import APIRouter

router = APIRouter(tags=["casework"])
