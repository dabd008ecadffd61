"""Code lists shared by events (CONTRACT.md section 6). Codes, never free text."""

from typing import Annotated, Literal

from pydantic import StringConstraints

ProvinceCode = Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-9]|2[0-5])$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Pseudonym = Annotated[
    str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
]
Priority = Literal["P1", "P2", "P3"]
TipPriority = Literal["P1", "P2", "P3", "informational"]
Team = Literal["OVCS", "HIT", "FST", "ICAC"]
Sex = Literal["female", "male", "other", "unknown"]
ReferralSource = Literal[
    "helpline_1288",
    "police",
    "ngo",
    "school",
    "health_facility",
    "community",
    "walk_in",
    "online",
    "other",
]
Concern = Literal[
    "sexual_abuse",
    "rape",
    "physical_abuse",
    "neglect",
    "trafficking",
    "online_exploitation",
    "homicide",
    "abduction",
    "domestic_violence",
    "child_labour",
    "other",
]
CaseStatus = Literal[
    "open",
    "under_investigation",
    "suspect_identified",
    "arrest_made",
    "charged",
    "in_court",
    "closed_convicted",
    "closed_acquitted",
    "closed_unfounded",
    "closed_transferred",
    "reopened",
]
VictimService = Literal[
    "medical_care",
    "psychological_counselling",
    "legal_representation",
    "shelter",
    "family_support",
    "partner_referral",
]
EvidenceType = Literal[
    "biological_sample",
    "blood",
    "dna_extract",
    "clothing",
    "document",
    "digital_device",
    "forensic_image",
    "other",
]
CustodyKind = Literal[
    "check_in",
    "transfer",
    "sent_to_lab",
    "returned",
    "court_exhibit",
    "released",
    "destroyed",
]
AnalysisType = Literal["dna_profile", "blood", "toxicology", "digital_extraction"]
IncidentType = Literal[
    "child_sexual_abuse_material",
    "online_enticement",
    "child_sex_trafficking",
    "child_sex_tourism",
    "child_sexual_molestation",
    "unsolicited_obscene_material_to_child",
    "misleading_domain_name",
    "misleading_content",
    "other",
]
TipDisposition = Literal["actionable", "informational", "no_jurisdiction", "duplicate", "escalate"]
