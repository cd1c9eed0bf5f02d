"""The project's URLs plus the bench-only routes (never mounted by backend.urls)."""

from django.urls import path

from backend.urls import urlpatterns as project_urlpatterns
from bench import views

urlpatterns = [
    path("bench/messages/<int:room_id>/", views.messages_page),
    path("bench/profile/", views.profile),
    path("bench/memory/", views.memory_profile),
    *project_urlpatterns,
]
