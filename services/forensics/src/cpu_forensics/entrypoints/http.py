"""HTTP routes of the forensics service under ``/api/v1``."""

from fastapi import APIRouter

router = APIRouter(tags=["forensics"])
