"""HTTP routes of the icac service under ``/api/v1``."""

from fastapi import APIRouter

router = APIRouter(tags=["icac"])
