"""The Spark engine in local mode gives the local engine's output, row for row."""

from __future__ import annotations

import sys

import pytest

from tests.training.relabel.relabel_takeover import check_takeover

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def local_spark():
    from pyspark.sql import SparkSession

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYSPARK_PYTHON", sys.executable)  # the Python workers run this interpreter
        spark = (
            SparkSession.builder.master("local[2,4]")
            .appName("test-relabel")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        yield spark
        spark.stop()


def test_relabel_spark_engine_equals_local_engine_row_for_row(tmp_path, trained_bundle_dir, local_spark):
    check_takeover(tmp_path, trained_bundle_dir, "spark", workers=2)
