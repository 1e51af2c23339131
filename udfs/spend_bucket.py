"""spend_bucket(amount): a coarse label for an amount, for features such as "how many large
purchases did the user make in the last hour". Thresholds are in the amount's own currency unit."""

from __future__ import annotations

from pyflink.table import DataTypes
from pyflink.table.udf import udf

SMALL_BELOW = 10.0
MEDIUM_BELOW = 100.0


def bucket_of(amount: float | None) -> str:
    """'none' without an amount, else 'small' (< 10), 'medium' (< 100) or 'large'."""
    if amount is None:
        return "none"
    if amount < SMALL_BELOW:
        return "small"
    if amount < MEDIUM_BELOW:
        return "medium"
    return "large"


spend_bucket = udf(bucket_of, input_types=[DataTypes.DOUBLE()], result_type=DataTypes.STRING())
