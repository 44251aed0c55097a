from django.apps import AppConfig


class AgentApiConfig(AppConfig):
    name = "agentapi"
    verbose_name = "Tunnel agent"
    default_auto_field = "django.db.models.BigAutoField"
