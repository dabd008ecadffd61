"""HTTP routes of the reporting service under ``/api/v1``."""

from fastapi import APIRouter

router = APIRouter(tags=["reporting"])
