import factory
from django.contrib.auth import get_user_model

from crm.models import OutboxEmail
from crm.roles import Role, assign_role

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name", locale="ja_JP")
    last_name = factory.Faker("last_name", locale="ja_JP")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def role(user, create, extracted, **kwargs):
        user.save()
        if create and extracted:
            assign_role(user, Role(extracted))


class OutboxEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboxEmail

    from_email = "CRM <crm@example.com>"
    to = factory.Sequence(lambda n: f"customer{n}@example.com")
    subject = factory.Sequence(lambda n: f"お知らせ {n}")
    body = "本文です。"
