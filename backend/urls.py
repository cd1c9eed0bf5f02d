from django.contrib import admin
from django.urls import path, re_path
from django.views.generic import TemplateView

from chat import views
from schema import schema
from schema.views import GraphQLView

urlpatterns = [
    path("", TemplateView.as_view(template_name="chat/index.html"), name="web-chat"),
    path("graphql/", GraphQLView.as_view(schema=schema)),
    path("graphql", GraphQLView.as_view(schema=schema)),
    path("healthz", views.healthz),
    path("api/openapi.json", views.openapi_document),
    path("api/uploads/", views.upload_attachment),
    path("api/rooms/<path:room_id>/messages/", views.post_message),
    path("api/attachments/<path:attachment_id>/download", views.download_attachment),
    path("api/attachments/<path:attachment_id>/thumbnail", views.download_thumbnail),
    path("api/avatars/<str:avatar_id>/<str:size>", views.download_avatar),
    re_path(r"^api/", views.api_not_found),
    path("admin/", admin.site.urls),
]
