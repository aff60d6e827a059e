"""The approver's workbench: versions with deltas vs production, approval pages with the
evidence, and promote / archive / roll back actions behind confirmation pages."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdmin, ReadOnlyAdminMixin
from core.audit import audit_record
from core.models import AuditEvent
from core.views import form_text
from registry import services
from registry.errors import GovernanceError
from registry.evidence import metric_deltas, policy_checks
from registry.extensions import evidence_section
from registry.models import (
    POLICY_FIELDS,
    ApprovalDecision,
    ApprovalRequest,
    Experiment,
    MLModel,
    MLModelVersion,
    PolicyChange,
    TrafficSplit,
)
from registry.policy import (
    policy_change_confirm,
    policy_change_reject,
    policy_update,
)
from registry.traffic import ExperimentPlan, traffic_preview, traffic_set


def _audit_table(queryset):
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
        (
            (
                e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                e.actor_label,
                e.action,
                str(e.payload)[:160],
            )
            for e in queryset[:50]
        ),
    )
    return format_html(
        "<table><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Details</th></tr>"
        "</thead><tbody>{}</tbody></table>",
        rows or "",
    )


@admin.register(MLModel)
class MLModelAdmin(admin.ModelAdmin):
    list_display = ["name", "display_label", "owner", "required_approvals", "fairness_gate"]
    search_fields = ["name", "display_label", "description"]
    readonly_fields = ["experiment_salt", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "display_label", "description", "owner"]}),
        (
            "Approval policy",
            {
                "description": "Strengthening takes effect at once and expires pending "
                "approvals; a weakening is proposed here and applies only when another "
                "approver confirms it under Policy changes.",
                "fields": [
                    "min_precision",
                    "min_recall",
                    "min_f1",
                    "min_auc",
                    "required_approvals",
                    "fairness_gate",
                    "protected_attributes",
                ],
            },
        ),
        (
            "Monitoring",
            {"fields": ["drift_window_minutes", "degradation_threshold", "explain_threshold"]},
        ),
        ("Schema", {"fields": ["feature_schema", "experiment_salt", "created_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.versions.exists():
            fields.append("name")  # the SOC backend's key; see MLModel.save
        return fields

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            audit_record(action="model.created", actor=request.user, obj=obj, model_name=obj.name)
            return
        new_policy = {f: getattr(obj, f) for f in POLICY_FIELDS}
        other = [f for f in form.changed_data if f not in POLICY_FIELDS]
        proposal = None
        with transaction.atomic():
            # Locked, and only the non-policy fields written: a policy change confirmed
            # meanwhile by another approver is neither lost nor silently undone.
            stored = MLModel.objects.select_for_update().get(pk=obj.pk)
            if other:
                obj.save(update_fields=other)
                audit_record(
                    action="model.changed",
                    actor=request.user,
                    obj=obj,
                    model_name=obj.name,
                    payload={
                        "changes": {
                            f: {
                                "old": _jsonable(getattr(stored, f)),
                                "new": _jsonable(getattr(obj, f)),
                            }
                            for f in other
                        }
                    },
                )
            try:
                proposal = policy_update(model=obj, new=new_policy, actor=request.user)
            except GovernanceError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        obj.refresh_from_db()
        if proposal is not None:
            self.message_user(
                request,
                f"The weakening ({', '.join(proposal.changes)}) is proposed as policy change "
                f"#{proposal.pk}; it applies when another approver confirms it.",
                messages.WARNING,
            )


def _jsonable(value):
    return value if isinstance(value, str | int | float | bool | list | dict | None) else str(value)


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyAdmin):
    """Proposed weakenings of a model's policy: a second approver confirms or rejects."""

    list_display = [
        "__str__",
        "model",
        "changes",
        "status",
        "proposed_by",
        "proposed_at",
        "decided_by",
    ]
    list_filter = ["status", "model"]
    actions = ["confirm", "reject"]

    def has_confirm_permission(self, request):
        return request.user.has_perm("registry.change_mlmodel")

    has_reject_permission = has_confirm_permission

    @admin.action(description="Confirm the selected changes", permissions=["confirm"])
    def confirm(self, request, queryset):
        self._decide(request, queryset, policy_change_confirm, "confirmed")

    @admin.action(description="Reject the selected changes", permissions=["reject"])
    def reject(self, request, queryset):
        self._decide(request, queryset, policy_change_reject, "rejected")

    def _decide(self, request, queryset, service, done):
        for proposal in queryset:
            try:
                service(proposal=proposal, actor=request.user)
            except GovernanceError as exc:
                self.message_user(request, f"#{proposal.pk}: {exc.message}", messages.ERROR)
            else:
                self.log_change(request, proposal, done)
                self.message_user(request, f"#{proposal.pk} {done}.", messages.SUCCESS)


def _delta(field, label):
    def column(self, obj):
        production = self._production.get(obj.model_id)
        value = metric_deltas(obj, production)[field]
        if value["candidate"] is None:
            return "—"
        shown = f"{value['candidate']:.3f}"
        if obj.metrics_self_reported:
            shown += " (self-reported)"
        if value["delta"] is None or production is None or production.pk == obj.pk:
            return shown
        sign = "+" if value["delta"] >= 0 else ""
        return format_html("{} <small>({}{})</small>", shown, sign, f"{value['delta']:.3f}")

    column.short_description = label
    return column


@admin.register(MLModelVersion)
class MLModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "status_badge",
        "precision_col",
        "recall_col",
        "f1_col",
        "auc_col",
        "traffic_percentage",
        "registered_by",
        "approved_by",
        "created_at",
    ]
    list_filter = ["status", "model"]
    search_fields = ["version", "model__name", "model_hash"]
    actions = ["promote_selected", "archive_selected", "rollback_selected"]
    change_form_template = "admin/registry/version_change_form.html"
    readonly_fields = [
        "model",
        "version",
        "status",
        "model_hash",
        "model_path",
        "artifact_format",
        "training_dataset_hash",
        "training_samples",
        "training_duration_seconds",
        "hyperparameters",
        "accuracy",
        "precision",
        "recall",
        "f1_score",
        "auc",
        "decision_threshold",
        "feature_schema",
        "reference_hash",
        "evaluation_hash",
        "evaluation_rows",
        "parent",
        "registered_by",
        "deployed_at",
        "deprecated_at",
        "approved_by",
        "approved_at",
        "approval_notes",
        "traffic_percentage",
        "audit_trail",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "model",
                    "version",
                    "status",
                    "traffic_percentage",
                    "parent",
                    "registered_by",
                ]
            },
        ),
        (
            "Metrics",
            {
                "fields": [
                    "accuracy",
                    "precision",
                    "recall",
                    "f1_score",
                    "auc",
                    "decision_threshold",
                ]
            },
        ),
        (
            "Model card",
            {
                "fields": [
                    "intended_use",
                    "limitations",
                    "ethical_considerations",
                    "evaluation_data",
                ]
            },
        ),
        (
            "Approval",
            {
                "fields": [
                    "approved_by",
                    "approved_at",
                    "approval_notes",
                    "deployed_at",
                    "deprecated_at",
                ]
            },
        ),
        (
            "Artifact and lineage",
            {
                "classes": ["collapse"],
                "fields": [
                    "model_hash",
                    "model_path",
                    "artifact_format",
                    "training_dataset_hash",
                    "training_samples",
                    "training_duration_seconds",
                    "hyperparameters",
                    "feature_schema",
                    "reference_hash",
                    "evaluation_hash",
                    "evaluation_rows",
                ],
            },
        ),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]

    precision_col = _delta("precision", "precision (Δ prod)")
    recall_col = _delta("recall", "recall (Δ prod)")
    f1_col = _delta("f1_score", "F1 (Δ prod)")
    auc_col = _delta("auc", "AUC (Δ prod)")

    def get_queryset(self, request):
        self._production = {
            v.model_id: v for v in MLModelVersion.objects.filter(status="production")
        }
        return super().get_queryset(request).select_related("model", "registered_by", "approved_by")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="badge {}">{}</span>', obj.status, obj.status)

    @admin.display(description="audit events")
    def audit_trail(self, obj):
        return _audit_table(
            AuditEvent.objects.filter(
                model_name=obj.model.name, payload__version=obj.version
            ).order_by("-id")
            | AuditEvent.objects.filter(object_type="MLModelVersion", object_id=str(obj.pk))
        )

    def has_add_permission(self, request):
        return False  # versions are registered through the API, train or register_version

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Only the model card of an undecided version can be edited (and editing it
        # expires pending requests through the evidence hash).
        if obj is not None and (obj.is_approved() or obj.status == "archived"):
            return False
        return super().has_change_permission(request, obj)

    def has_promote_version_permission(self, request):
        return request.user.has_perm("registry.promote_version")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)

        audit_record(
            action="version.card_edited",
            actor=request.user,
            obj=obj,
            model_name=obj.model.name,
            payload={"changed": form.changed_data},
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/lifecycle/<str:op>/",
                self.admin_site.admin_view(self.lifecycle_view),
                name="registry_mlmodelversion_lifecycle",
            ),
        ] + super().get_urls()

    def lifecycle_view(self, request, pk, op):
        """Confirm, then run promote / archive / rollback / staging for one version."""
        if not self.has_promote_version_permission(request):
            raise PermissionDenied
        version = get_object_or_404(MLModelVersion, pk=pk)
        labels = {
            "promote": "Promote to production",
            "archive": "Archive",
            "rollback": "Roll back the model to its previous production version",
            "stage": "Move to staging",
        }
        if op not in labels:
            raise PermissionDenied
        if request.method == "POST":
            self._run_lifecycle(request, version, op, form_text(request, "notes", 5000))
            return redirect(reverse("admin:registry_mlmodelversion_change", args=[version.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": labels[op],
            "version": version,
            "op": op,
            "label": labels[op],
            "opts": self.model._meta,
            "production": version.model.production_version(),
        }
        return TemplateResponse(request, "admin/registry/confirm_lifecycle.html", context)

    def _run_lifecycle(self, request, version, op, notes):
        try:
            if op == "rollback":
                result = services.version_rollback(
                    model=version.model, actor=request.user, notes=notes
                )
            else:
                to = {"promote": "production", "archive": "archived", "stage": "staging"}[op]
                result = services.version_transition(
                    version=version, to=to, actor=request.user, notes=notes
                )
        except services.GovernanceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.log_change(request, result, f"{op}: {notes}".strip(": "))
        self.message_user(request, f"{result}: {result.status}", messages.SUCCESS)

    def _confirm_bulk(self, request, queryset, op):
        if "confirm" in request.POST:
            notes, rolled_back = form_text(request, "notes", 5000), set()
            for version in queryset:
                if op == "rollback":  # one rollback per model, however many rows are picked
                    if version.model_id in rolled_back:
                        continue
                    rolled_back.add(version.model_id)
                self._run_lifecycle(request, version, op, notes)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Confirm {op}",
            "versions": queryset,
            "op": op,
            "opts": self.model._meta,
            "action": request.POST.get("action"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/registry/confirm_bulk.html", context)

    @admin.action(
        description="Promote selected versions to production", permissions=["promote_version"]
    )
    def promote_selected(self, request, queryset):
        return self._confirm_bulk(request, queryset, "promote")

    @admin.action(description="Archive selected versions", permissions=["promote_version"])
    def archive_selected(self, request, queryset):
        return self._confirm_bulk(request, queryset, "archive")

    @admin.action(
        description="Roll back the selected versions' models", permissions=["promote_version"]
    )
    def rollback_selected(self, request, queryset):
        return self._confirm_bulk(request, queryset, "rollback")


class DecisionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ApprovalDecision
    extra = 0
    readonly_fields = ["approver", "decision", "notes", "decided_at"]


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "status", "requested_by", "requested_at", "decided_at"]
    list_filter = ["status", "version__model"]
    inlines = [DecisionInline]
    change_form_template = "admin/registry/approval_change_form.html"
    readonly_fields = [
        "version",
        "requested_by",
        "requested_at",
        "notes",
        "status",
        "decided_at",
        "evidence_hash",
    ]
    exclude = ["evidence"]

    def has_approve_version_permission(self, request):
        return request.user.has_perm("registry.approve_version")

    def get_urls(self):
        return [
            path(
                "<int:pk>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="registry_approvalrequest_decide",
            ),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        approval = get_object_or_404(ApprovalRequest, pk=object_id)
        extra = {
            "approval": approval,
            "evidence": approval.evidence,
            "live_checks": policy_checks(approval.version),
            "live_fairness": evidence_section("fairness", approval.version),
            "can_decide": self.has_approve_version_permission(request)
            and approval.status == "pending",
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def decide_view(self, request, pk):
        if request.method != "POST" or not self.has_approve_version_permission(request):
            raise PermissionDenied
        approval = get_object_or_404(ApprovalRequest, pk=pk)
        decision = request.POST.get("decision", "")
        notes = form_text(request, "notes", 5000)
        try:
            services.approval_decide(
                request=approval, approver=request.user, decision=decision, notes=notes
            )
        except services.GovernanceError as exc:
            detail = "; ".join(
                c["check"] + ": " + c["detail"] for c in exc.details.get("failed_checks", [])
            )
            self.message_user(
                request, f"{exc.message}{' — ' + detail if detail else ''}", messages.ERROR
            )
        else:
            approval.refresh_from_db()
            self.log_change(request, approval, f"{decision}: {notes}")
            self.message_user(
                request,
                f"Recorded: {decision}. Request is now {approval.status}.",
                messages.SUCCESS,
            )
        return redirect(reverse("admin:registry_approvalrequest_change", args=[pk]))


# --- A/B traffic: split editing with a confirmation of the entities that move ---------


class TrafficSplitForm(forms.Form):
    challenger = forms.ModelChoiceField(
        queryset=MLModelVersion.objects.none(),
        required=False,
        empty_label="none (champion takes 100 %)",
        help_text="Approved staging versions only.",
    )
    challenger_percentage = forms.DecimalField(
        min_value=0, max_value=100, decimal_places=2, initial=0
    )
    shadows = forms.ModelMultipleChoiceField(
        queryset=MLModelVersion.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Staging versions that score every request without acting.",
    )
    hypothesis = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    primary_metric = forms.ChoiceField(choices=Experiment.Metric.choices)
    minimum_sample_size = forms.IntegerField(min_value=30, initial=400)
    notes = forms.CharField(required=False, max_length=5000)
    revision = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args, model, **kwargs):
        super().__init__(*args, **kwargs)
        staging = model.versions.filter(status=MLModelVersion.Status.STAGING)
        self.fields["challenger"].queryset = staging.filter(approved_at__isnull=False)
        self.fields["shadows"].queryset = staging

    def clean(self):
        data = super().clean()
        share = data.get("challenger_percentage")
        if share and not data.get("challenger"):
            self.add_error("challenger", "A share above 0 % needs a challenger.")
        if data.get("challenger") and not share:
            self.add_error("challenger_percentage", "Give the challenger a share above 0 %.")
        return data


@admin.register(TrafficSplit)
class TrafficSplitAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Approvers edit a model's split here; every change is previewed, then confirmed."""

    def has_module_permission(self, request):
        return request.user.has_perm("registry.set_traffic")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("registry.set_traffic")

    def get_urls(self):
        return [
            path(
                "edit/<slug:name>/",
                self.admin_site.admin_view(self.edit_view),
                name="registry_trafficsplit_edit",
            ),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        splits = {s.model_id: s for s in TrafficSplit.objects.select_related("challenger")}
        rows = [(m, m.production_version(), splits.get(m.pk)) for m in MLModel.objects.all()]
        context = {
            **self.admin_site.each_context(request),
            "title": "Traffic splits",
            "rows": rows,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/registry/traffic_list.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        split = get_object_or_404(TrafficSplit, pk=object_id)
        return redirect(reverse("admin:registry_trafficsplit_edit", args=[split.model.name]))

    def edit_view(self, request, name):
        if not self.has_view_permission(request):
            raise PermissionDenied
        model = get_object_or_404(MLModel, name=name)
        split = TrafficSplit.objects.filter(model=model).first()
        if request.method != "POST":
            form = TrafficSplitForm(model=model, initial=self._initial(model, split))
            return self._render(request, "admin/registry/traffic_edit.html", model, form)
        form = TrafficSplitForm(request.POST, model=model)
        if not form.is_valid():
            return self._render(request, "admin/registry/traffic_edit.html", model, form)
        if "confirm" not in request.POST:
            return self._confirm(request, model, split, form)
        return self._apply(request, model, form)

    def _initial(self, model, split) -> dict:
        open_experiment = model.experiments.filter(status__in=["planned", "running"]).first()
        initial = {"revision": split.revision if split else 0}
        if split is not None:
            initial.update(
                challenger=split.challenger,
                challenger_percentage=split.challenger_bp / 100,
                shadows=list(split.shadows.all()),
            )
        if open_experiment is not None:
            initial.update(
                hypothesis=open_experiment.hypothesis,
                primary_metric=open_experiment.primary_metric,
                minimum_sample_size=open_experiment.minimum_sample_size,
            )
            if split is None or split.challenger is None:
                initial["challenger"] = open_experiment.challenger
        return initial

    def _render(self, request, template, model, form, **extra):
        context = {
            **self.admin_site.each_context(request),
            "title": f"Traffic split of {model.name}",
            "model": model,
            "form": form,
            "opts": self.model._meta,
            "production": model.production_version(),
            **extra,
        }
        return TemplateResponse(request, template, context)

    def _confirm(self, request, model, split, form):

        data = form.cleaned_data
        preview = traffic_preview(
            model=model,
            challenger=data["challenger"],
            challenger_bp=int(data["challenger_percentage"] * 100),
        )
        return self._render(
            request,
            "admin/registry/traffic_confirm.html",
            model,
            form,
            split=split,
            preview=preview,
            new_champion=100 - data["challenger_percentage"],
        )

    def _apply(self, request, model, form):

        data = form.cleaned_data
        try:
            split = traffic_set(
                model=model,
                challenger=data["challenger"],
                challenger_bp=int(data["challenger_percentage"] * 100),
                shadows=list(data["shadows"]),
                actor=request.user,
                notes=data["notes"],
                plan=ExperimentPlan(
                    hypothesis=data["hypothesis"],
                    primary_metric=data["primary_metric"],
                    minimum_sample_size=data["minimum_sample_size"],
                ),
                expected_revision=data["revision"],
            )
        except services.GovernanceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return redirect(reverse("admin:registry_trafficsplit_edit", args=[model.name]))
        summary = (
            f"champion {split.champion_bp / 100:g} %, "
            + (f"challenger {split.challenger.version} " if split.challenger else "no challenger ")
            + f"{split.challenger_bp / 100:g} %"
        )
        self.log_change(request, split, f"traffic: {summary}. {data['notes']}".strip())
        self.message_user(request, f"Traffic of {model.name} set: {summary}.", messages.SUCCESS)
        return redirect(reverse("experiments:experiment", args=[model.name]))


@admin.register(Experiment)
class ExperimentAdmin(ReadOnlyAdmin):
    """Read-only record of experiments; they change through the split and the guardrail."""

    list_display = ["__str__", "status", "primary_metric", "started_at", "ended_at", "end_reason"]
    list_filter = ["status", "model"]

    def has_module_permission(self, request):
        return request.user.has_perm("registry.set_traffic")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("registry.set_traffic")
