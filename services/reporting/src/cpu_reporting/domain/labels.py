"""Names of the figures in English and Khmer, for the PDF, the CSV header notes and the pages.

The Khmer is the project's working translation; the unit's translator reviews it (the pages
take theirs from ``web/translations/km.po``, which repeats these).
"""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    "referrals": ("Referrals received", "ការបញ្ជូនករណីដែលបានទទួល"),
    "investigations": ("Investigations opened", "ការស៊ើបអង្កេតដែលបានបើក"),
    "investigations_with_arrest": ("Investigations with an arrest", "ការស៊ើបអង្កេតមានការចាប់ខ្លួន"),
    "arrests": ("Arrests", "ការចាប់ខ្លួន"),
    "arrest_rate": ("Arrest rate", "អត្រាចាប់ខ្លួន"),
    "charged": ("Suspects charged", "ជនសង្ស័យត្រូវបានចោទប្រកាន់"),
    "convictions": ("Convictions", "ការផ្តន្ទាទោស"),
    "acquittals": ("Acquittals", "ការរួចទោស"),
    "sentence_years": ("Years of sentences", "ចំនួនឆ្នាំនៃទោស"),
    "child_homicides": ("Child homicides (under 15)", "ឃាតកម្មលើកុមារ (អាយុក្រោម ១៥ ឆ្នាំ)"),
    "children_legal_representation": (
        "Children given legal representation",
        "កុមារដែលទទួលបានការតំណាងផ្លូវច្បាប់",
    ),
    "victim_services.medical_care": ("Medical care", "ការថែទាំវេជ្ជសាស្ត្រ"),
    "victim_services.psychological_counselling": (
        "Psychological counselling",
        "ការប្រឹក្សាផ្លូវចិត្ត",
    ),
    "victim_services.legal_representation": ("Legal representation", "ការតំណាងផ្លូវច្បាប់"),
    "victim_services.shelter": ("Shelter", "ទីជម្រក"),
    "victim_services.family_support": ("Family support", "ការគាំទ្រគ្រួសារ"),
    "victim_services.partner_referral": ("Referral to a partner", "ការបញ្ជូនទៅដៃគូ"),
    "evidence_items": ("Evidence items registered", "វត្ថុតាងដែលបានចុះបញ្ជី"),
    "lab_analyses_requested": ("Lab analyses requested", "ការវិភាគមន្ទីរពិសោធន៍ដែលបានស្នើ"),
    "lab_analyses_completed": ("Lab analyses completed", "ការវិភាគមន្ទីរពិសោធន៍ដែលបានបញ្ចប់"),
    "icac_tips_received": ("ICAC tips received", "ព័ត៌មាន ICAC ដែលបានទទួល"),
    "icac_tips_actioned": ("ICAC tips actioned", "ព័ត៌មាន ICAC ដែលបានចាត់វិធានការ"),
    "icac_tips_escalated": ("ICAC tips escalated", "ព័ត៌មាន ICAC ដែលបានបញ្ជូនបន្ត"),
    "median_days_referral_to_arrest": (
        "Median days, referral to arrest",
        "មេដ្យានថ្ងៃ ពីការបញ្ជូនដល់ការចាប់ខ្លួន",
    ),
    "median_hours_referral_to_first_contact": (
        "Median hours, referral to first contact",
        "មេដ្យានម៉ោង ពីការបញ្ជូនដល់ការជួបលើកដំបូង",
    ),
    "median_days_referral_to_first_service": (
        "Median days, referral to first victim service",
        "មេដ្យានថ្ងៃ ពីការបញ្ជូនដល់សេវាដំបូង",
    ),
    "province": ("Province", "ខេត្ត"),
    "offence": ("Offence", "បទល្មើស"),
    "team": ("Team", "ក្រុម"),
    "month": ("Month", "ខែ"),
    "total": ("Total", "សរុប"),
    "unknown": ("unknown", "មិនស្គាល់"),
    "none": ("none", "គ្មាន"),
    "title": ("Child Protection Unit: annual report", "អង្គភាពការពារកុមារ៖ របាយការណ៍ប្រចាំឆ្នាំ"),
    "period": ("Period", "រយៈពេល"),
    "by_month": ("By month", "តាមខែ"),
    "by_province": ("By province", "តាមខេត្ត"),
    "by_offence": ("By offence", "តាមបទល្មើស"),
    "figures": ("Figures", "តួលេខ"),
    "suppression_note": (
        "Counts from 1 to {n} show as <{m}; where one cell of a breakdown is hidden, the next "
        "smallest is withheld too (x).",
        "ចំនួនពី ១ ដល់ {n} បង្ហាញជា <{m}។",
    ),
}


def en(key: str) -> str:
    return LABELS.get(key, (key, key))[0]


def km(key: str) -> str:
    return LABELS.get(key, (key, key))[1]
