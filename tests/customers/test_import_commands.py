"""`manage.py import_customers` and `import_purchases`: the printed report, the full error
report, and the exit status (non-zero whenever a row has an error)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from customers.models import ConsentRecord, Customer, ImportJob, Product, Purchase
from tests.conftest import ROOT, _database_url
from tests.customers.factories import CustomerFactory


def run(command: str, *args: str):
    out, err = StringIO(), StringIO()
    with translation.override("en"):
        call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def customers_file(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(
        "external_id,family_name,given_name,birthday,email_opt_in\n"
        "C1,山田,太郎,1990-01-05,はい\n"
        "C2,佐藤,花子,1985/12/31,\n".encode("cp932")
    )
    return path


@pytest.mark.django_db
def test_import_customers_prints_what_it_did_and_records_the_import(customers_file, sales):
    out, err = run("import_customers", str(customers_file), "--user", "sales")
    assert out == "2 rows read: 2 created, 0 updated.\n"
    assert err == ""
    assert Customer.objects.count() == 2
    assert ConsentRecord.objects.get().recorded_by == sales
    job = ImportJob.objects.get()
    assert (job.kind, job.file_name, job.status, job.rows_created, job.created_by) == (
        "customers",
        "customers.csv",
        "succeeded",
        2,
        sales,
    )
    assert job.total_bytes == job.processed_bytes == customers_file.stat().st_size

    out, _err = run("import_customers", str(customers_file))
    assert out == "2 rows read: 0 created, 2 updated.\n"


@pytest.mark.django_db
def test_row_errors_fail_the_command_and_import_nothing(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,birthday,gender\nC1,1990-01-01,female\nC2,1990-13-01,robot\n")
    with pytest.raises(CommandError, match="1 row has errors: nothing was imported"):
        run("import_customers", str(path))
    assert not Customer.objects.exists()
    assert ImportJob.objects.get().status == "failed"


@pytest.mark.django_db
def test_row_errors_are_printed_with_line_and_column(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,birthday\nC1,1990-01-01\nC2,1990-13-01\n")
    err = StringIO()
    with translation.override("en"), pytest.raises(CommandError):
        call_command("import_customers", str(path), stderr=err, stdout=StringIO())
    assert err.getvalue() == ("line 3, birthday: “1990-13-01” is not a date (use YYYY-MM-DD)\n")


@pytest.mark.django_db
def test_keep_valid_rows_imports_the_rest_but_still_fails(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,email\nC1,a@example.jp\nC2,not-an-address\n")
    with pytest.raises(CommandError, match="1 row has errors and was skipped"):
        run("import_customers", str(path), "--keep-valid-rows")
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["C1"]


@pytest.mark.django_db
def test_errors_csv_gets_every_error(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,phone\n" + "".join(f"C{n},12\n" for n in range(30)))
    report = tmp_path / "errors.csv"
    err = StringIO()
    with translation.override("en"), pytest.raises(CommandError, match="30 rows have errors"):
        call_command(
            "import_customers",
            str(path),
            "--errors-csv",
            str(report),
            stderr=err,
            stdout=StringIO(),
        )
    printed = err.getvalue().splitlines()
    assert len(printed) == 21  # the first 20 errors, then where the rest are
    assert printed[-1] == f"… and more: see {report}"
    rows = list(csv.reader(report.open(encoding="utf-8-sig")))
    assert rows[0] == ["line", "column", "reason"]
    assert [row[0] for row in rows[1:]] == [str(line) for line in range(2, 32)]
    assert rows[1][1:] == [
        "phone",
        "“12” is not a phone number (10 to 15 digits, e.g. 03-1234-5678)",
    ]


@pytest.mark.django_db
def test_import_purchases_reports_products_created(tmp_path):
    CustomerFactory(external_id="C1")
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_external_id,purchased_at,total,sku,quantity,unit_price\n"
        "O1,C1,2026-05-03,3960,TEA-01,2,1080\n"
        "O1,C1,2026-05-03,3960,CUP-01,1,1800\n",
        encoding="utf-8-sig",
    )
    out, _err = run("import_purchases", str(path))
    assert out == (
        "2 rows read: 1 created, 0 updated.\n2 products were created for unknown SKUs.\n"
    )
    assert Purchase.objects.get().items.count() == 2
    assert Product.objects.count() == 2


@pytest.mark.django_db
def test_file_level_errors_and_missing_files(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order_id,colour\nO1,red\n")
    with pytest.raises(CommandError, match="Unknown columns: colour"):
        run("import_purchases", str(path))
    assert ImportJob.objects.get().status == "failed"
    with pytest.raises(CommandError, match=r"Cannot open .*missing\.csv: No such file"):
        run("import_purchases", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="No user is called nobody"):
        run("import_purchases", str(path), "--user", "nobody")


@pytest.mark.django_db(transaction=True)
def test_exit_status_of_the_real_command(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("external_id\nC1\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,birthday\nC2,tomorrow\n")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "LANGUAGE_CODE": "en",
    }

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = manage("import_customers", str(good))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "1 row read: 1 created, 0 updated.\n"
    failed = manage("import_customers", str(bad))
    assert failed.returncode == 1
    assert "line 2, birthday: “tomorrow” is not a date" in failed.stderr
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["C1"]
