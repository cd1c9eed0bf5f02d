from django.contrib import admin
from django.urls import path, re_path

from chat import admin as chat_admin
from chat import views, web_session
from schema import schema
from schema.views import GraphQLView

urlpatterns = [
    path("", web_session.WebChatView.as_view(), name="web-chat"),
    path("web/session/", web_session.keep_refresh_token),
    path("web/session/refresh/", web_session.refresh),
    path("web/session/logout/", web_session.log_out),
    path("graphql/", GraphQLView.as_view(schema=schema)),
    path("graphql", GraphQLView.as_view(schema=schema)),
    path("livez", views.livez),
    path("readyz", views.readyz),
    path("healthz", views.healthz),
    path("metrics", views.metrics),
    path("api/openapi.json", views.openapi_document),
    path("api/uploads/", views.upload_attachment),
    path("api/rooms/<path:room_id>/messages/", views.post_message),
    path("api/attachments/<path:attachment_id>/download", views.download_attachment),
    path("api/attachments/<path:attachment_id>/thumbnail", views.download_thumbnail),
    path("api/avatars/<str:avatar_id>/<str:size>", views.download_avatar),
    re_path(r"^api/", views.api_not_found),
    path("admin/login/", chat_admin.login_view),  # the admin's own, slowed like tokenAuth
    path("admin/", admin.site.urls),
]
