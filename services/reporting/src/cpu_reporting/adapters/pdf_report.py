"""The annual report as PDF, in Khmer and English, with matplotlib charts.

fpdf2 shapes Khmer through HarfBuzz (``uharfbuzz``, ``set_text_shaping(True)``); every label is
given in both languages. Only the published (suppressed) summary goes in.
"""

from __future__ import annotations

from typing import Any

from fpdf import FPDF

from cpu_reporting.adapters.charts import bar_chart_png
from cpu_reporting.domain.labels import en, km

TOTAL_ROWS = (
    "investigations",
    "arrests",
    "arrest_rate",
    "charged",
    "convictions",
    "sentence_years",
    "child_homicides",
    "children_legal_representation",
    "referrals",
    "icac_tips_received",
    "icac_tips_actioned",
    "icac_tips_escalated",
    "evidence_items",
    "lab_analyses_requested",
    "lab_analyses_completed",
    "median_days_referral_to_arrest",
    "median_hours_referral_to_first_contact",
    "median_days_referral_to_first_service",
)
BREAKDOWN_COLUMNS = ("investigations", "arrests", "arrest_rate", "charged", "convictions")


def _shown(value: Any, name: str = "") -> str:
    if value is None:
        return "-"
    if name == "arrest_rate" and isinstance(value, float):
        return f"{value:.0%}"
    return str(value)


def _bilingual(key: str) -> str:
    return f"{km(key)} / {en(key)}"


class _Report(FPDF):
    def __init__(self, font_path: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.add_font("khmer", fname=font_path)
        self.set_text_shaping(True)
        self.set_auto_page_break(auto=True, margin=15)
        self.set_font("khmer", size=10)
        self.set_title("CPU annual report")
        self.set_creator("cpu-reporting")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("khmer", size=7)
        self.cell(0, 6, f"{self.page_no()}", align="C")


def annual_report_pdf(doc: dict[str, Any], *, font_path: str, year: int) -> bytes:
    pdf = _Report(font_path)
    pdf.add_page()
    pdf.set_font("khmer", size=15)
    pdf.multi_cell(0, 9, km("title"), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 8, f"{en('title')} {year}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("khmer", size=9)
    period = f"{doc['period']['from']} to {doc['period']['to']}"
    pdf.cell(0, 6, f"{_bilingual('period')}: {period}", new_x="LMARGIN", new_y="NEXT")
    filters = ", ".join(f"{k}={v}" for k, v in doc["filters"].items() if v)
    if filters:
        pdf.cell(0, 6, filters, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    _section(pdf, "figures")
    for name in TOTAL_ROWS:
        _row(pdf, [km(name), en(name), _shown(doc.get(name), name)], (70, 85, 25))
    for service, value in doc.get("victim_services", {}).items():
        key = f"victim_services.{service}"
        _row(pdf, [km(key), en(key), _shown(value)], (70, 85, 25))
    months = doc.get("by_month", [])
    if months:
        png = bar_chart_png(
            f"{km('by_month')} / {en('by_month')}",
            [m["month"][5:] for m in months],
            {
                f"{km('investigations')} / {en('investigations')}": [
                    m["investigations"] for m in months
                ],
                f"{km('arrests')} / {en('arrests')}": [m["arrests"] for m in months],
            },
            font_path=font_path,
        )
        pdf.add_page()
        _section(pdf, "by_month")
        pdf.image(png, w=180)
    provinces = doc.get("by_province", [])
    if provinces:
        png = bar_chart_png(
            f"{km('by_province')} / {en('by_province')}",
            [str(p["province"]) for p in provinces],
            {
                f"{km('investigations')} / {en('investigations')}": [
                    p["investigations"] for p in provinces
                ],
                f"{km('arrests')} / {en('arrests')}": [p["arrests"] for p in provinces],
            },
            font_path=font_path,
        )
        pdf.ln(4)
        _section(pdf, "by_province")
        pdf.image(png, w=180)
        _breakdown(pdf, "province", provinces)
    offences = doc.get("by_offence", [])
    if offences:
        pdf.add_page()
        _section(pdf, "by_offence")
        _breakdown(pdf, "offence", offences)
    pdf.ln(4)
    pdf.set_font("khmer", size=7)
    threshold = doc["suppression"]["threshold"]
    for text in (en("suppression_note"), km("suppression_note")):
        pdf.multi_cell(
            0, 4, text.format(n=threshold - 1, m=threshold), new_x="LMARGIN", new_y="NEXT"
        )
    for name, definition in doc.get("definitions", {}).items():
        pdf.multi_cell(0, 4, f"{name}: {definition}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _section(pdf: FPDF, key: str) -> None:
    pdf.set_font("khmer", size=11)
    pdf.cell(0, 8, _bilingual(key), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("khmer", size=8)


def _row(pdf: FPDF, cells: list[str], widths: tuple[float, ...], header: bool = False) -> None:
    pdf.set_font("khmer", size=8 if not header else 7)
    for text, width in zip(cells, widths, strict=True):
        pdf.cell(width, 6, text, border=1)
    pdf.ln(6)


def _breakdown(pdf: FPDF, dimension: str, rows: list[dict[str, Any]]) -> None:
    widths = (45, *([27] * len(BREAKDOWN_COLUMNS)))
    _row(pdf, [_bilingual(dimension), *(en(c) for c in BREAKDOWN_COLUMNS)], widths, header=True)
    for row in rows:
        key = str(row[dimension])
        label = _bilingual(key) if key in ("unknown", "none") else key
        _row(pdf, [label, *(_shown(row.get(c), c) for c in BREAKDOWN_COLUMNS)], widths)
