"""The import pages: who may use them, the upload form, and an upload run end to end by a
real Celery worker (progress page, error table, downloadable error report)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from customers.models import Customer, ImportJob, ImportStatus, Purchase
from tests.conftest import wait_for
from tests.crm.test_auth import csrf_token
from tests.customers.factories import CustomerFactory

CUSTOMERS = "external_id,family_name,given_name,family_name_kana,email_opt_in\n"


def upload(client, *, kind: str, name: str, content: bytes, keep_valid_rows: bool = False):
    page = client.get("/imports/new/", HTTP_ACCEPT_LANGUAGE="en")
    data = {
        "csrfmiddlewaretoken": csrf_token(page),
        "kind": kind,
        "file": SimpleUploadedFile(name, content, content_type="text/csv"),
    }
    if keep_valid_rows:
        data["keep_valid_rows"] = "on"
    return client.post("/imports/new/", data, HTTP_ACCEPT_LANGUAGE="en")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/imports/", "/imports/new/"])
def test_sales_and_admins_may_import_marketers_may_not(
    client_as, sales, admin_member, marketer, path
):
    assert client_as(sales).get(path).status_code == 200
    assert client_as(admin_member).get(path).status_code == 200
    assert client_as(marketer).get(path).status_code == 403


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_the_login_page(csrf_client):
    job = ImportJob.objects.create(kind="customers", file_name="a.csv")
    for path in [
        "/imports/",
        "/imports/new/",
        f"/imports/{job.pk}/",
        f"/imports/{job.pk}/errors.csv",
    ]:
        response = csrf_client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_role_without_purchase_permissions_cannot_import_purchases(client_as, make_user):
    from django.contrib.auth.models import Permission

    user = make_user()
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="customers", codename__in=["add_customer", "change_customer"]
        )
    )
    client = client_as(user)
    response = upload(client, kind="purchases", name="p.csv", content=b"order_id\n")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ImportJob.objects.exists()
    purchases_job = ImportJob.objects.create(kind="purchases", file_name="p.csv")
    assert client.get(f"/imports/{purchases_job.pk}/").status_code == 404
    assert client.get("/imports/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("customers.xlsx", b"external_id\nC1\n", "Choose a .csv file"),
        ("customers.csv", b"", "The submitted file is empty."),
    ],
)
def test_the_form_refuses_other_files(client_as, sales, name, content, message):
    response = upload(client_as(sales), kind="customers", name=name, content=content)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_the_form_explains_the_columns(client_as, sales):
    page = client_as(sales).get("/imports/new/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    for column in ["external_id", "family_name_kana", "email_opt_in", "order_id", "unit_price"]:
        assert f"<code>{column}</code>" in page
    assert "An empty cell leaves the stored value as it is" in page


@pytest.mark.django_db
def test_the_job_page_polls_while_the_import_runs_and_stops_when_done(client_as, sales):
    client = client_as(sales)
    job = ImportJob.objects.create(
        kind="customers", file_name="a.csv", status=ImportStatus.RUNNING, total_bytes=200
    )
    page = client.get(f"/imports/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'hx-trigger="every 1s"' in page
    assert "<progress" in page
    fragment = client.get(f"/imports/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="import-status"')
    assert "<html" not in fragment

    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.SUCCEEDED, processed_bytes=200)
    done = client.get(f"/imports/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done
    assert 'value="100"' in done


@pytest.mark.django_db
def test_the_list_shows_past_imports_newest_first(client_as, sales):
    ImportJob.objects.create(kind="customers", file_name="old.csv", rows_read=3)
    ImportJob.objects.create(kind="purchases", file_name="new.csv", rows_read=5)
    page = client_as(sales).get("/imports/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert page.index("new.csv") < page.index("old.csv")


@pytest.mark.django_db
def test_the_error_report_falls_back_to_the_errors_the_job_kept(client_as, sales):
    job = ImportJob.objects.create(
        kind="customers",
        file_name="顧客.csv",
        status=ImportStatus.FAILED,
        error_count=1,
        errors=[{"line": 3, "column": "birthday", "reason": "“x” is not a date"}],
    )
    response = client_as(sales).get(f"/imports/{job.pk}/errors.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == [
        ["line", "column", "reason"],
        ["3", "birthday", "“x” is not a date"],
    ]


@pytest.mark.worker
def test_upload_is_imported_by_the_worker(client_as, sales, celery_worker):
    client = client_as(sales)
    content = (CUSTOMERS + "C1,山田,太郎,やまだ,はい\nC2,佐藤,花子,サトウ,いいえ\n").encode("cp932")
    response = upload(client, kind="customers", name="顧客一覧.csv", content=content)
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/imports/{job.pk}/"
    assert (job.file_name, job.total_bytes, job.created_by) == ("顧客一覧.csv", len(content), sales)

    job = wait_for(
        lambda: ImportJob.objects.filter(pk=job.pk, status=ImportStatus.SUCCEEDED).first()
    )
    assert (job.rows_read, job.rows_created, job.error_count, job.progress) == (2, 2, 0, 100)
    assert Customer.objects.get(external_id="C1").family_name_kana == "ヤマダ"
    consent = Customer.objects.get(external_id="C1").consent_records.get()
    assert (consent.source, consent.form, consent.recorded_by) == ("import", "顧客一覧.csv", sales)

    page = client.get(f"/imports/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Every row was imported." in page
    assert "hx-trigger" not in page


@pytest.mark.worker
def test_upload_with_errors_imports_nothing_and_offers_the_full_report(
    client_as, sales, celery_worker
):
    CustomerFactory(external_id="C1")
    client = client_as(sales)
    rows = "".join(f"O{n},{'C1' if n % 2 else 'NOBODY'},2026-05-03,1980\n" for n in range(150))
    content = ("order_id,customer_external_id,purchased_at,total\n" + rows).encode()
    upload(client, kind="purchases", name="orders.csv", content=content)
    job = wait_for(lambda: ImportJob.objects.filter(status=ImportStatus.FAILED).first())
    assert (job.rows_read, job.rows_created, job.error_count) == (150, 0, 75)
    assert not Purchase.objects.exists()

    page = client.get(f"/imports/{job.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Nothing was imported: 75 rows have errors." in page
    assert "no customer has the external ID “NOBODY”" in page
    assert f'href="/imports/{job.pk}/errors.csv"' in page

    response = client.get(f"/imports/{job.pk}/errors.csv")
    report = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert report[0] == ["line", "column", "reason"]
    assert len(report) == 76
    assert report[1][:2] == ["2", "customer_external_id"]


@pytest.mark.worker
def test_keep_valid_rows_and_a_file_level_error(client_as, sales, celery_worker):
    CustomerFactory(external_id="C1")
    client = client_as(sales)
    content = (
        b"order_id,customer_external_id,purchased_at,total\nO1,C1,2026-05-03,1980\nO2,C1,soon,1\n"
    )
    upload(client, kind="purchases", name="o.csv", content=content, keep_valid_rows=True)
    upload(client, kind="customers", name="bad.csv", content=b"external_id,shoe_size\nC9,27\n")
    wait_for(
        lambda: (
            ImportJob.objects.filter(
                status__in=[ImportStatus.SUCCEEDED, ImportStatus.FAILED]
            ).count()
            == 2
        )
    )
    kept = ImportJob.objects.get(file_name="o.csv")
    assert (kept.status, kept.rows_created, kept.error_count) == ("succeeded", 1, 1)
    assert Purchase.objects.get().order_id == "O1"
    page = client.get(f"/imports/{kept.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The valid rows were imported; 1 row with errors was skipped." in page

    failed = ImportJob.objects.get(file_name="bad.csv")
    assert failed.status == "failed"
    assert "Unknown columns: shoe_size" in failed.errors[0]["reason"]
    assert not Customer.objects.filter(external_id="C9").exists()


@pytest.mark.django_db
def test_a_job_is_run_once_even_if_the_task_is_delivered_twice(sales):
    from customers.tasks import run_import

    job = ImportJob.objects.create(kind="customers", file_name="c.csv", created_by=sales)
    job.file.save("c.csv", ContentFile(CUSTOMERS.encode() + "C1,山田,太郎,ヤマダ,yes\n".encode()))
    run_import(job.pk, "en")
    run_import(job.pk, "en")
    job.refresh_from_db()
    assert (job.status, job.rows_created) == ("succeeded", 1)
    assert Customer.objects.get().consent_records.count() == 1
