"""Duplicate detection: features from plaintext, scores from opaque tokens only."""

import hashlib
import hmac
from datetime import date
from typing import Any

import pytest

from cpu_intake.domain.matching import (
    MATCH_THRESHOLD,
    CandidateChildren,
    FeatureKind,
    MatchFeatures,
    latin_tokens,
    match_features,
    rank_matches,
    score,
)
from cpu_intake.domain.referral import Child

TODAY = date(2026, 3, 1)
KEY = b"k" * 32


def child(**changes: Any) -> Child:
    data: dict[str, Any] = {
        "sex": "female",
        "age_estimate": 9,
        "province_code": "12",
        "district": "Dangkao",
        "commune": "Prey Sa",
        "village": "Trapeang",
    }
    data.update(changes)
    return Child.model_validate(data)


def features(c: Child, phone: str | None = None) -> MatchFeatures:
    return match_features(c, phone, as_of=TODAY)


def blind(f: MatchFeatures) -> MatchFeatures:
    """What the adapter stores: HMAC-SHA256 of each value under a key per kind."""

    def digest(kind: str, value: str) -> str:
        kind_key = hmac.new(KEY, kind.encode(), hashlib.sha256).digest()
        return hmac.new(kind_key, value.encode(), hashlib.sha256).hexdigest()

    return f.transform(digest)


def both_ways(a: MatchFeatures, b: MatchFeatures) -> tuple[float, tuple[str, ...]]:
    plain = score(a, b)
    assert score(b, a) == plain  # symmetric
    assert score(blind(a), blind(b)) == plain  # identical on digests
    return plain


# --- features ---------------------------------------------------------------------------------


def test_latin_tokens_fold_case_accents_and_apostrophes() -> None:
    assert latin_tokens("  Sók-DARA  O'Neil ") == ["sok", "dara", "oneil"]
    assert latin_tokens("សុខា") == []


def test_features_per_kind() -> None:
    f = features(
        child(given_name="Sokha", family_name="Chan", name_km="ចាន់ សុខា", village="Phum Trapeang"),
        "012 345 678",
    )
    assert f[FeatureKind.NAME_FULL] == {"sokhachan", "chansokha"}
    assert f[FeatureKind.NAME_TOKEN] == {"sokha", "chan"}
    assert "sokhchan" in f[FeatureKind.NAME_FUZZY]  # one letter deleted
    assert "metaphone:SKH XN" in f[FeatureKind.NAME_PHONETIC]
    assert {"metaphone:SKH", "nysiis:SACK", "mrc:SKH"} <= f[FeatureKind.NAME_PHONETIC_TOKEN]
    assert f[FeatureKind.NAME_KM] == {"ចាន់សុខា"}  # the words sorted are the same here
    assert f[FeatureKind.NAME_KM_SKELETON] == {"ចនសខ"}
    assert f[FeatureKind.BIRTH_YEAR] == {"2016", "2017", "2018"}
    assert FeatureKind.DOB not in f
    assert f[FeatureKind.VILLAGE] == {"12|dangkao|prey sa|trapeang"}  # "Phum" dropped
    assert f[FeatureKind.COMMUNE] == {"12|dangkao|prey sa"}
    assert f[FeatureKind.REPORTER_PHONE] == {"+85512345678"}
    assert f[FeatureKind.SEX] == {"female"}
    assert "Sokha" not in repr(f) and "sokha" not in repr(f)  # no personal data in logs


def test_date_of_birth_gives_the_exact_date_and_its_year() -> None:
    f = features(child(date_of_birth=date(2016, 5, 4), age_estimate=None))
    assert f[FeatureKind.DOB] == {"2016-05-04"}
    assert f[FeatureKind.BIRTH_YEAR] == {"2016"}


def test_khmer_zero_width_characters_and_spacing_do_not_change_features() -> None:
    plain = features(child(name_km="ចាន់ សុខា"))
    assert features(child(name_km="ចាន់\u200bសុខា")) == plain
    assert features(child(name_km="ចាន់សុខា"))[FeatureKind.NAME_KM] >= {"ចាន់សុខា"}


def test_khmer_name_in_the_other_order_is_the_same_name() -> None:
    _, reasons = both_ways(features(child(name_km="ចាន់ សុខា")), features(child(name_km="សុខា ចាន់")))
    assert reasons[0] == "name_km"


def test_subscript_da_and_ta_are_one_letter_for_matching() -> None:
    da, ta = features(child(name_km="កណ្ដាល")), features(child(name_km="កណ្តាល"))
    assert da[FeatureKind.NAME_KM] == ta[FeatureKind.NAME_KM]


# --- scores -----------------------------------------------------------------------------------


def test_same_child_with_khmer_name_with_and_without_zero_width_space_scores_high() -> None:
    value, reasons = both_ways(
        features(child(name_km="ចាន់ សុខា")), features(child(name_km="ចាន់\u200bសុខា"))
    )
    assert value > 0.95
    assert reasons == ("name_km", "age_close", "village")


def test_khmer_spelling_variant_meets_on_the_consonant_skeleton() -> None:
    # vowel sign and nikahit typed in the other order
    value, reasons = both_ways(features(child(name_km="ស្រីមុំ")), features(child(name_km="ស្រីមំុ")))
    assert value >= MATCH_THRESHOLD
    assert reasons[0] == "name_km_skeleton"


def test_latin_typo_scores_above_threshold_through_fuzzy_tokens() -> None:
    value, reasons = both_ways(
        features(child(given_name="Sokha", family_name="Chan")),
        features(child(given_name="Sokhar", family_name="Chan")),
    )
    assert value > MATCH_THRESHOLD
    assert reasons[0] == "name_fuzzy"


def test_latin_typo_alone_with_only_an_age_still_reaches_the_threshold() -> None:
    bare = {"district": None, "commune": None, "village": None}
    value, reasons = both_ways(
        features(child(given_name="Sokha", family_name="Chan", **bare)),
        features(child(given_name="Sokhar", family_name="Chan", **bare)),
    )
    assert value > MATCH_THRESHOLD
    assert reasons == ("name_fuzzy", "age_close")


def test_romanisation_variant_meets_on_phonetic_keys() -> None:
    # Two letters apart ("Vannak"/"Vanak" is one deletion; add a second change)
    value, reasons = both_ways(
        features(child(given_name="Vannak", family_name="Kim")),
        features(child(given_name="Vanakk", family_name="Kimm")),
    )
    assert "phonetic" in reasons
    assert value > MATCH_THRESHOLD


def test_family_name_first_or_given_name_first_is_the_same_name() -> None:
    value, reasons = both_ways(
        features(child(given_name="Dara", family_name="Sok")),
        features(child(given_name="Sok", family_name="Dara")),
    )
    assert reasons[0] == "name_exact" and value > 0.95


def test_names_written_with_or_without_a_space_are_the_same_name() -> None:
    _, reasons = both_ways(
        features(child(given_name="Sreymom", family_name="Chan")),
        features(child(given_name="Srey Mom", family_name="Chan")),
    )
    assert reasons[0] == "name_exact"


def test_exact_date_of_birth_is_a_reason() -> None:
    dob = {"date_of_birth": date(2016, 5, 4), "age_estimate": None}
    value, reasons = both_ways(
        features(child(given_name="Sokha", family_name="Chan", **dob)),
        features(child(given_name="Sokha", family_name="Chan", **dob)),
    )
    assert "dob_exact" in reasons and "age_close" not in reasons
    assert value > 0.99


def test_different_children_score_below_threshold() -> None:
    value, reasons = both_ways(
        features(child(given_name="Sokha", family_name="Chan", name_km="ចាន់ សុខា")),
        features(
            child(
                given_name="Vichea",
                family_name="Chea",
                name_km="ជា វិជ្ជា",
                sex="male",
                age_estimate=15,
                province_code="17",
                village="Kouk Chak",
            )
        ),
    )
    assert value < MATCH_THRESHOLD
    assert reasons == ()


def test_siblings_reported_by_the_same_parent_stay_below_threshold() -> None:
    phone = "012 345 678"
    value, reasons = both_ways(
        features(child(given_name="Dara", family_name="Sok", name_km="សុខ ដារា"), phone),
        features(
            child(given_name="Vanna", family_name="Sok", name_km="សុខ វណ្ណា", age_estimate=10),
            phone,
        ),
    )
    assert value < MATCH_THRESHOLD
    assert "reporter_phone" in reasons


def test_reporter_phone_adds_a_reason_and_raises_the_score() -> None:
    a = child(given_name="Sokha", family_name="Chan", village=None)
    b = child(given_name="Sokhar", family_name="Chan", village=None)
    without, reasons_without = both_ways(features(a, "012 345 678"), features(b, "097 123 4567"))
    with_phone, reasons_with = both_ways(features(a, "012 345 678"), features(b, "+85512345678"))
    assert "reporter_phone" not in reasons_without
    assert "reporter_phone" in reasons_with
    assert with_phone > without


def test_score_is_in_zero_to_one() -> None:
    same = features(child(given_name="Sokha", family_name="Chan"), "012 345 678")
    assert 0.0 <= score(same, same)[0] <= 1.0
    assert 0.0 <= score(MatchFeatures({}), same)[0] <= 1.0


def test_hmac_digests_give_identical_scores_on_every_pair() -> None:
    children = [
        features(child(given_name="Sokha", family_name="Chan", name_km="ចាន់ សុខា"), "012345678"),
        features(child(given_name="Sokhar", family_name="Chan", name_km="ចាន់\u200bសុខា")),
        features(child(given_name="Dara", family_name="Sok", date_of_birth=date(2016, 1, 2))),
        features(child(given_name="Sok", family_name="Dara", age_estimate=10, village=None)),
        features(child(name_km="ស្រីមុំ", sex="unknown"), "012 345 678"),
    ]
    hashed = [blind(f) for f in children]
    for f in hashed:  # nothing readable is left
        assert all(len(value) == 64 for _, value in f.pairs())
    for i, a in enumerate(children):
        for j, b in enumerate(children):
            assert score(hashed[i], hashed[j]) == score(a, b)


# --- ranking ----------------------------------------------------------------------------------


def test_rank_matches_best_first_without_weak_ones_or_itself() -> None:
    probe = [features(child(given_name="Sokha", family_name="Chan", name_km="ចាន់ សុខា"))]
    earlier = [
        CandidateChildren("r-typo", [features(child(given_name="Sokhar", family_name="Chan"))]),
        CandidateChildren("r-other", [features(child(given_name="Vichea", family_name="Chea"))]),
        CandidateChildren(
            "r-two-children",
            [
                features(child(given_name="Vichea", family_name="Chea")),
                features(child(given_name="Sokha", family_name="Chan", name_km="ចាន់សុខា")),
            ],
        ),
        CandidateChildren("r-self", probe),
    ]
    hashed = [
        CandidateChildren(c.referral_id, [blind(MatchFeatures(f)) for f in c.children])
        for c in earlier
    ]
    for candidates, probe_children in ((earlier, probe), (hashed, [blind(probe[0])])):
        matches = rank_matches(probe_children, candidates, exclude="r-self")
        assert [m.referral_id for m in matches] == ["r-two-children", "r-typo"]
        assert matches[0].candidate_child_index == 1 and matches[0].child_index == 0
        assert matches[0].score >= matches[1].score >= MATCH_THRESHOLD
        assert "name_km" in matches[0].reasons


@pytest.mark.parametrize("threshold", [0.0, 0.99])
def test_rank_matches_threshold(threshold: float) -> None:
    probe = [features(child(given_name="Sokha", family_name="Chan"))]
    earlier = [CandidateChildren("r1", [features(child(given_name="Sokhar", family_name="Chan"))])]
    matches = rank_matches(probe, earlier, threshold=threshold)
    assert len(matches) == (1 if threshold == 0.0 else 0)
