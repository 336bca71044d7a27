"""CRM customer-fit file (seed 000 §1.4; feedlake.streams.crm) on the seed's own lines."""

from datetime import datetime, timezone

from chispa import assert_df_equality
from pyspark.sql import functions as F

from feedlake.streams.crm import crm_lead_rows
from tests.unit.stream_records import accepted, validated

# The seed's two example lines; the second repeats "is_worked" (here with two different values).
SEED = [
    '{"email":"elon@tesla.com", "account":"tesla", "created_at": "1234567890", "is_worked":"true", "is_converted":"true", "amount": "2499"}',
    '{"email":"jb@tesla.com", "account":"tesla", "created_at": "1234567890", "is_worked":"false", "is_converted":"true", '
    '"amount": "2499", "is_worked":"true", "is_unqualified":"false", "team_size__c": "10-49"}',
]


def test_crm_leads_cast_and_keep_other_fields(spark, config):
    stream = config.stream("crm")
    lines = [
        *SEED,
        '{"email":"k@tesla.com","account":"tesla","created_at":1234567890,"is_worked":true,"is_converted":false,"amount":99.5,'
        '"worked_date":"1234567900","converted_date":1234568000,"deal_amount":"30000","lead_source":"webinar"}',
        '{"email":"x@tesla.com","account":"tesla","created_at":"2009-02-13","is_worked":"yes","is_converted":"true","amount":"2,499"}',
        '{"email":"y@tesla.com","account":"tesla","created_at":"1234567890","is_worked":"true","is_converted":"true"}',
        '{"email":"z@tesla.com","account":"tesla","created_at":"1234567890123","is_worked":"TRUE","is_converted":"False","amount":"1"}',
    ]
    records = validated(spark, stream, lines)
    leads = crm_lead_rows(accepted(records), stream)["crm_leads"].drop("_seq", "_batch_id", "_source_file")
    utc = timezone.utc
    created = datetime(2009, 2, 13, 23, 31, 30, tzinfo=utc)
    expected = spark.createDataFrame(
        [
            ("t1", "elon@tesla.com", "tesla", created, True, True, 2499.0, None, None, None, None, "{}", 1),
            ("t1", "jb@tesla.com", "tesla", created, True, True, 2499.0, False, None, None, None, '{"team_size__c":"10-49"}', 2),
            ("t1", "k@tesla.com", "tesla", created, True, False, 99.5, None, datetime(2009, 2, 13, 23, 31, 40, tzinfo=utc),
             datetime(2009, 2, 13, 23, 33, 20, tzinfo=utc), 30000.0, '{"lead_source":"webinar"}', 3),
        ],
        "tenant_id STRING, email STRING, account STRING, created_at TIMESTAMP, is_worked BOOLEAN, is_converted BOOLEAN, "
        "amount DOUBLE, is_unqualified BOOLEAN, worked_date TIMESTAMP, converted_date TIMESTAMP, deal_amount DOUBLE, "
        "properties STRING, _line_number BIGINT",
    )
    assert_df_equality(leads, expected, ignore_row_order=True, ignore_nullable=True)
    errors = records.where(F.col("error_code").isNotNull()).select("line_number", "error_code", "error_message")
    expected_errors = spark.createDataFrame(
        [
            (4, "invalid_type", "field 'created_at' must be Unix time in seconds (digits only, e.g. 1436172703), got '2009-02-13'; "
                "field 'is_worked' must be a boolean: true or false, got 'yes'; field 'amount' must be a number (e.g. 42 or 12.5), "
                "got '2,499'"),
            (5, "missing_required_field", "required field 'amount' is missing or empty (seed 000 §1.4)"),
            (6, "invalid_type", "field 'created_at' must be Unix time in seconds (digits only, e.g. 1436172703), "
                "got '1234567890123' (it looks like milliseconds: divide by 1000)"),
        ],
        "line_number BIGINT, error_code STRING, error_message STRING",
    )
    assert_df_equality(errors, expected_errors, ignore_row_order=True, ignore_nullable=True)
