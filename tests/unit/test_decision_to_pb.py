"""decision_to_pb builds its message in place (it runs for every audited Predict); the message
is the one the constructor form built: the same fields, the same presence."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rowcast import convert
from rowcast.core import records as r
from rowcast.core.keys import new_decision_id
from rowcast.core.signature import RawValue
from rowcast.v1 import resources_pb2 as pb


def reference(d: r.Decision) -> pb.Decision:
    """The constructor form decision_to_pb had before (nested messages passed in)."""
    return pb.Decision(
        decision_id=d.decision_id,
        model=d.model,
        model_version=d.model_version,
        subject=d.subject,
        features=convert.features_to_pb(d.features),
        key=d.key_hex,
        output=d.output,
        source=convert.SOURCE_TO_PB[d.source],
        decide_time=convert.timestamp(d.decide_time_ms),
        augmentations=[convert.augmentation_to_pb(a) for a in d.augmentations],
        chain=convert.chain_to_pb(d.chain),
    )


_text = st.text(max_size=12)
augmentations = st.builds(
    r.Augmentation,
    augmentation_id=_text,
    better_output=st.floats(allow_nan=False),
    source=st.sampled_from(list(r.AugmentationSource)),
    actor=_text,
    reason=_text,
    state=st.sampled_from(list(r.AugmentationState)),
    create_time_ms=st.integers(0, 2**40),
    reviewed_augmentation_id=_text,
)
chains = st.none() | st.builds(
    r.ChainLink,
    chain_id=_text,
    sequence=st.integers(0, 2**40),
    tag=st.binary(max_size=32).map(bytes.hex),
)


@settings(max_examples=300, deadline=None)
@given(
    features=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(_text, st.floats(allow_nan=False), st.integers(-(2**40), 2**40)),
        max_size=5,
    ),
    subject=_text,
    output=st.floats(allow_nan=False),
    source=st.sampled_from(list(r.Source)),
    decide_time_ms=st.integers(0, 2**42),
    augs=st.lists(augmentations, max_size=3),
    chain=chains,
)
def test_the_message_is_the_constructor_forms(
    features: dict[str, RawValue],
    subject: str,
    output: float,
    source: r.Source,
    decide_time_ms: int,
    augs: list[r.Augmentation],
    chain: r.ChainLink | None,
) -> None:
    d = r.Decision(
        decision_id=new_decision_id(decide_time_ms),
        model="m",
        model_version=3,
        subject=subject,
        features=features,
        key_hex="0a00",
        output=output,
        source=source,
        decide_time_ms=decide_time_ms,
        augmentations=tuple(augs),
        chain=chain,
    )
    got, want = convert.decision_to_pb(d), reference(d)
    assert got == want
    assert got.HasField("chain") is want.HasField("chain") is (chain is not None)
    for name in features:
        assert got.features[name].WhichOneof("kind") == want.features[name].WhichOneof("kind")
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
