"""CRM customer-fit file (seed 000 §1.4) end to end through the CLI: JSON lines and CSV."""

import json
from datetime import datetime, timezone

from chispa import assert_df_equality

from tests.conftest import ingest_report, jsonl, read_table

# The seed's own two lines (the second repeats "is_worked").
SEED = [
    '{"email":"elon@tesla.com", "account":"tesla", "created_at": "1234567890", "is_worked":"true", "is_converted":"true", "amount": "2499"}',
    '{"email":"elon@tesla.com", "account":"tesla", "created_at": "1234567890", "is_worked":"true", "is_converted":"true", '
    '"amount": "2499", "is_worked":"true", "is_unqualified":"false", "team_size__c": "10-49"}',
]


def test_crm_leads_from_jsonl_and_csv(spark, landing, warehouse):
    root = landing({
        "tenant=tesla/crm/dt=2024-03-01/leads.jsonl.gz": jsonl(
            *SEED,
            # A repeated key keeps its last value: this lead is worked.
            '{"email":"jb@tesla.com","account":"tesla","created_at":1234567890,"is_worked":"false","is_converted":false,'
            '"amount":0,"is_worked":"true"}',
            '{"email":"bad@tesla.com","account":"tesla","created_at":"1234567890","is_worked":"yes","is_converted":"true","amount":"1"}',
            '{"email":"ms@tesla.com","account":"tesla","created_at":"1234567890000","is_worked":"true","is_converted":"true","amount":"1"}',
            '{"account":"tesla","created_at":"1234567890","is_worked":"true","is_converted":"true","amount":"1"}',
        ),
        # A day later, as CSV: elon's lead converted with a deal; the newest file wins.
        "tenant=tesla/crm/dt=2024-03-02/leads.csv": (
            "email,account,created_at,is_worked,is_converted,amount,converted_date,deal_amount,lead_source\n"
            "elon@tesla.com,tesla,1234567890,TRUE,true,2999.5,1234600000,36000,webinar\n"
            "kim@tesla.com,tesla,1234567890,false,false,,,,\n"
            'eve@tesla.com,tesla,1234567890,true,true,"1,000",,,\n'
        ),
    })
    ingest_report(root, warehouse, quality=False)  # quality is not under test here
    report = json.loads(next((warehouse / "_reports").glob("*.json")).read_text())
    [crm] = [s for s in report["streams"] if s["stream"] == "crm"]
    # elon@ is sent three times (twice in the seed's lines, once in the CSV): two are duplicates.
    assert (crm["records_read"], crm["accepted"], crm["quarantined"], crm["duplicates_dropped"]) == (9, 2, 5, 2)
    assert crm["quarantined_by_code"] == {"invalid_type": 3, "missing_required_field": 2}
    assert crm["tables"] == {"crm_leads": {"inserted": 2, "updated": 0}}

    leads = read_table(spark, warehouse, "crm_leads", [
        "tenant_id", "email", "account", "created_at", "is_worked", "is_converted", "amount", "is_unqualified",
        "converted_date", "deal_amount", "properties", "_source_file",
    ])
    utc = timezone.utc
    created = datetime(2009, 2, 13, 23, 31, 30, tzinfo=utc)
    expected = spark.createDataFrame(
        [
            ("tesla", "elon@tesla.com", "tesla", created, True, True, 2999.5, None, datetime(2009, 2, 14, 8, 26, 40, tzinfo=utc),
             36000.0, '{"lead_source":"webinar"}', "tenant=tesla/crm/dt=2024-03-02/leads.csv"),
            ("tesla", "jb@tesla.com", "tesla", created, True, False, 0.0, None, None, None, "{}",
             "tenant=tesla/crm/dt=2024-03-01/leads.jsonl.gz"),
        ],
        "tenant_id STRING, email STRING, account STRING, created_at TIMESTAMP, is_worked BOOLEAN, is_converted BOOLEAN, "
        "amount DOUBLE, is_unqualified BOOLEAN, converted_date TIMESTAMP, deal_amount DOUBLE, properties STRING, "
        "_source_file STRING",
    )
    assert_df_equality(leads, expected.orderBy(*expected.columns), ignore_nullable=True)

    quarantine = read_table(spark, warehouse, "quarantine", ["source_file", "line_number", "error_code", "error_message"])
    expected = spark.createDataFrame(
        [
            ("tenant=tesla/crm/dt=2024-03-01/leads.jsonl.gz", 4, "invalid_type",
             "field 'is_worked' must be a boolean: true or false, got 'yes'"),
            ("tenant=tesla/crm/dt=2024-03-01/leads.jsonl.gz", 5, "invalid_type",
             "field 'created_at' must be Unix time in seconds (digits only, e.g. 1436172703), got '1234567890000' "
             "(it looks like milliseconds: divide by 1000)"),
            ("tenant=tesla/crm/dt=2024-03-01/leads.jsonl.gz", 6, "missing_required_field",
             "required field 'email' is missing or empty (seed 000 §1.4)"),
            ("tenant=tesla/crm/dt=2024-03-02/leads.csv", 3, "missing_required_field",
             "required field 'amount' is missing or empty (seed 000 §1.4)"),
            ("tenant=tesla/crm/dt=2024-03-02/leads.csv", 4, "invalid_type",
             "field 'amount' must be a number (e.g. 42 or 12.5), got '1,000'"),
        ],
        "source_file STRING, line_number BIGINT, error_code STRING, error_message STRING",
    )
    assert_df_equality(quarantine, expected.orderBy(*expected.columns), ignore_nullable=True)
