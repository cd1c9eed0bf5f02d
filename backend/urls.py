from django.contrib import admin
from django.urls import path

from chat import views
from schema import schema
from schema.views import GraphQLView

urlpatterns = [
    path("graphql/", GraphQLView.as_view(schema=schema)),
    path("graphql", GraphQLView.as_view(schema=schema)),
    path("healthz", views.healthz),
    path("admin/", admin.site.urls),
]
