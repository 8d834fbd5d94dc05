//! The Ticket aggregate: the state a decision needs, folded from the ticket's events, and the
//! rules that decide a command into new events. `decide` may refuse; `apply` never fails, because a
//! rule inside `apply` would make an already stored history unreplayable.

use crate::command::Command;
use crate::envelope::Actor;
use crate::error::TicketError;
use crate::event::TicketEvent;
use crate::inactivity::{self, CountdownEffect};
use crate::roles::{IssueLevel, SupportRole, TicketStatus, UserRole};
use crate::service_level::SlaTarget;
use std::collections::HashMap;

/// What the rules need to know about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    /// Who wrote it: authors may edit and delete their own messages.
    pub author_id: String,
    /// Staff-only notes are invisible to customers, so customers cannot address them.
    pub internal: bool,
    /// Deleted messages can be neither edited nor deleted again.
    pub deleted: bool,
    /// The current text, so an edit to the same text decides nothing.
    pub content: String,
}

/// A ticket as its rules see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ticket {
    /// How many events have been folded in; the expected version of the next append.
    pub version: u64,
    /// The owner's user id, once opened; `None` means the stream is empty.
    pub owner_id: Option<String>,
    /// Open or closed.
    pub status: Option<TicketStatus>,
    /// The support team it is with.
    pub support_role: Option<SupportRole>,
    /// Its urgency.
    pub issue_level: Option<IssueLevel>,
    /// Every message ever posted, by id.
    pub messages: HashMap<String, MessageState>,
    /// Who holds it, if anyone, and their name.
    pub assignee: Option<(String, String)>,
    /// Its tags, as stored.
    pub tags: Vec<String>,
    /// The last public staff message the customer has not answered since: the auto-close
    /// countdown runs from it (ADR 0022).
    pub awaiting: Option<String>,
    /// Whether its owner has rated it: once per ticket, ever.
    pub rated: bool,
    /// The service-level targets recorded missed in their current period (ADR 0025).
    pub sla_recorded: Vec<SlaTarget>,
}

impl Ticket {
    /// Folds a whole history, in order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a TicketEvent>) -> Self {
        let mut ticket = Ticket::default();
        for event in events {
            ticket.apply(event);
        }
        ticket
    }

    /// Folds one event in. Never fails and never checks a rule.
    pub fn apply(&mut self, event: &TicketEvent) {
        self.version += 1;
        match event {
            TicketEvent::TicketOpened {
                user_id,
                support_role,
                issue_level,
                ..
            } => {
                self.owner_id = Some(user_id.clone());
                self.status = Some(TicketStatus::Open);
                self.support_role = Some(*support_role);
                self.issue_level = Some(*issue_level);
            }
            TicketEvent::MessagePosted {
                message_id,
                author_id,
                author_role,
                internal,
                content,
                ..
            } => {
                match inactivity::message_effect(author_id, *author_role, *internal) {
                    CountdownEffect::Start => self.awaiting = Some(message_id.clone()),
                    CountdownEffect::Stop => self.awaiting = None,
                    CountdownEffect::Warned | CountdownEffect::None => {}
                }
                self.messages.insert(
                    message_id.clone(),
                    MessageState {
                        author_id: author_id.clone(),
                        internal: *internal,
                        deleted: false,
                        content: content.clone(),
                    },
                );
            }
            TicketEvent::MessageEdited {
                message_id,
                content,
                ..
            } => {
                if let Some(message) = self.messages.get_mut(message_id) {
                    message.content = content.clone();
                }
            }
            TicketEvent::MessageDeleted { message_id } => {
                if let Some(message) = self.messages.get_mut(message_id) {
                    message.deleted = true;
                }
            }
            TicketEvent::SupportRoleChanged { to, .. } => self.support_role = Some(*to),
            TicketEvent::IssueLevelChanged { to, .. } => self.issue_level = Some(*to),
            TicketEvent::TicketClosed { .. } => {
                self.status = Some(TicketStatus::Closed);
                self.awaiting = None;
            }
            TicketEvent::TicketReopened {} => {
                self.status = Some(TicketStatus::Open);
                self.sla_recorded.retain(|t| *t != SlaTarget::Resolution);
            }
            TicketEvent::AssigneeChanged { to, to_name, .. } => {
                self.assignee = to
                    .as_ref()
                    .map(|id| (id.clone(), to_name.clone().unwrap_or_else(|| id.clone())));
            }
            TicketEvent::TagsChanged { tags } => self.tags = tags.clone(),
            TicketEvent::FeedbackGiven { .. } => self.rated = true,
            TicketEvent::SlaBreached { target, .. } => {
                if !self.sla_recorded.contains(target) {
                    self.sla_recorded.push(*target);
                }
            }
            // Events of the streams beside tickets never reach a ticket's stream.
            TicketEvent::ReplySaved { .. }
            | TicketEvent::ReplyDeleted { .. }
            | TicketEvent::UserBlocked { .. }
            | TicketEvent::UserUnblocked { .. } => {}
        }
    }

    /// Whether the ticket exists.
    pub fn exists(&self) -> bool {
        self.owner_id.is_some()
    }

    /// Whether `actor` may see this ticket at all: its owner and staff.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        actor.is_staff() || self.owner_id.as_deref() == Some(actor.id.as_str())
    }

    /// Decides a command into the events it causes; an empty list means nothing changes.
    pub fn decide(
        &self,
        command: &Command,
        actor: &Actor,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        if let Command::OpenTicket {
            topic,
            description,
            email,
        } = command
        {
            if self.exists() {
                return Err(TicketError::TicketAlreadyExists);
            }
            return Ok(vec![TicketEvent::TicketOpened {
                user_id: actor.id.clone(),
                user_name: actor.name.clone(),
                user_email: email.clone(),
                user_role: actor.role,
                topic: topic.clone(),
                description: description.clone(),
                support_role: SupportRole::General,
                issue_level: IssueLevel::Normal,
            }]);
        }
        if !self.exists() {
            return Err(TicketError::TicketNotFound);
        }
        if !self.visible_to(actor) {
            return Err(TicketError::Forbidden(
                "this ticket belongs to another user",
            ));
        }
        let closed = self.status == Some(TicketStatus::Closed);
        match command {
            Command::OpenTicket { .. } => unreachable_open(),
            Command::PostMessage {
                message_id,
                content,
                attachments,
                internal,
            } => {
                // A message already posted (a retry under the same idempotency key) stays as it
                // is, even if the ticket has closed since; once deleted, a retry must not bring
                // it back, so it answers as any deleted message does.
                if let Some(message) = self.messages.get(message_id) {
                    return if message.deleted {
                        Err(TicketError::MessageNotFound)
                    } else {
                        Ok(vec![])
                    };
                }
                if closed {
                    return Err(TicketError::TicketClosed);
                }
                if *internal && !actor.is_staff() {
                    return Err(TicketError::Forbidden("only staff may post internal notes"));
                }
                Ok(vec![TicketEvent::MessagePosted {
                    message_id: message_id.clone(),
                    author_id: actor.id.clone(),
                    author_name: actor.name.clone(),
                    author_role: actor.role,
                    content: content.clone(),
                    attachments: attachments.clone(),
                    internal: *internal,
                }])
            }
            Command::EditMessage {
                message_id,
                content,
                attachments,
            } => {
                let message = self.own_message(message_id, actor)?;
                if closed {
                    return Err(TicketError::TicketClosed);
                }
                if message.content == *content && attachments.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![TicketEvent::MessageEdited {
                    message_id: message_id.clone(),
                    content: content.clone(),
                    attachments: attachments.clone(),
                }])
            }
            Command::DeleteMessage { message_id } => {
                self.own_message(message_id, actor)?;
                if closed {
                    return Err(TicketError::TicketClosed);
                }
                Ok(vec![TicketEvent::MessageDeleted {
                    message_id: message_id.clone(),
                }])
            }
            Command::ChangeSupportRole { to } => {
                self.staff_on_open_ticket(actor, closed)?;
                match self.support_role {
                    Some(from) if from != *to => {
                        Ok(vec![TicketEvent::SupportRoleChanged { from, to: *to }])
                    }
                    _ => Ok(vec![]),
                }
            }
            Command::ChangeIssueLevel { to } => {
                self.staff_on_open_ticket(actor, closed)?;
                match self.issue_level {
                    Some(from) if from != *to => {
                        Ok(vec![TicketEvent::IssueLevelChanged { from, to: *to }])
                    }
                    _ => Ok(vec![]),
                }
            }
            Command::CloseTicket { reason } => {
                if closed {
                    return Err(TicketError::TicketClosed);
                }
                Ok(vec![TicketEvent::TicketClosed {
                    reason: reason.clone(),
                }])
            }
            Command::ReopenTicket => {
                if !actor.is_staff() {
                    return Err(TicketError::Forbidden("only staff may reopen a ticket"));
                }
                if !closed {
                    return Err(TicketError::TicketNotClosed);
                }
                Ok(vec![TicketEvent::TicketReopened {}])
            }
            Command::Claim {
                assignee_id,
                assignee_name,
            } => {
                staff_only(actor, "only staff may claim a ticket")?;
                if closed {
                    return Err(TicketError::TicketClosed);
                }
                match &self.assignee {
                    Some((holder, _)) if holder == assignee_id => Ok(vec![]),
                    Some((_, name)) if actor.role != UserRole::Admin => {
                        Err(TicketError::HeldByAnother { by: name.clone() })
                    }
                    _ => Ok(vec![
                        self.assignee_change(Some(assignee_id), Some(assignee_name)),
                    ]),
                }
            }
            Command::Unclaim => {
                staff_only(actor, "only staff may release a ticket")?;
                match &self.assignee {
                    None => Ok(vec![]),
                    Some((holder, _)) if *holder != actor.id && actor.role != UserRole::Admin => {
                        Err(TicketError::Forbidden(
                            "only the ticket's holder or an admin may release it",
                        ))
                    }
                    Some(_) => Ok(vec![self.assignee_change(None, None)]),
                }
            }
            Command::Assign {
                assignee_id,
                assignee_name,
            } => {
                staff_only(actor, "only staff may assign a ticket")?;
                if closed {
                    return Err(TicketError::TicketClosed);
                }
                let current = self.assignee.as_ref().map(|(id, _)| id.as_str());
                if actor.role != UserRole::Admin && current.is_some_and(|holder| holder != actor.id)
                {
                    return Err(TicketError::Forbidden(
                        "an agent may assign a ticket only while it is unassigned or theirs",
                    ));
                }
                if current == assignee_id.as_deref() {
                    return Ok(vec![]);
                }
                Ok(vec![self.assignee_change(
                    assignee_id.as_deref(),
                    assignee_name.as_deref(),
                )])
            }
            Command::SetTags { tags } => self.retag(actor, tags.clone()),
            Command::WarnInactive {
                awaiting,
                message_id,
                content,
            } => {
                system_only(actor)?;
                // Already posted (by another instance, or a retry): nothing more.
                if self.messages.contains_key(message_id) {
                    return Ok(vec![]);
                }
                self.still_waiting(awaiting, closed)?;
                Ok(vec![TicketEvent::MessagePosted {
                    message_id: message_id.clone(),
                    author_id: actor.id.clone(),
                    author_name: actor.name.clone(),
                    author_role: actor.role,
                    content: content.clone(),
                    attachments: vec![],
                    internal: false,
                }])
            }
            Command::CloseInactive { awaiting } => {
                system_only(actor)?;
                self.still_waiting(awaiting, closed)?;
                Ok(vec![TicketEvent::TicketClosed {
                    reason: Some(inactivity::CLOSE_REASON.into()),
                }])
            }
            Command::AddTag { tag } => {
                let mut tags = self.tags.clone();
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
                if tags.len() > crate::limits::TAGS_MAX {
                    return Err(TicketError::TooManyTags);
                }
                self.retag(actor, tags)
            }
            Command::RemoveTag { tag } => {
                let tags = self.tags.iter().filter(|t| *t != tag).cloned().collect();
                self.retag(actor, tags)
            }
            Command::GiveFeedback { rating, comment } => {
                if self.owner_id.as_deref() != Some(actor.id.as_str()) {
                    return Err(TicketError::Forbidden(
                        "only the ticket's owner may rate it",
                    ));
                }
                if self.rated {
                    return Err(TicketError::FeedbackAlreadyGiven);
                }
                if !closed {
                    return Err(TicketError::TicketNotClosed);
                }
                Ok(vec![TicketEvent::FeedbackGiven {
                    rating: *rating,
                    comment: comment.clone(),
                }])
            }
            Command::RecordSlaBreach { target, due_at } => {
                system_only(actor)?;
                if self.sla_recorded.contains(target) {
                    return Ok(vec![]);
                }
                Ok(vec![TicketEvent::SlaBreached {
                    target: *target,
                    due_at: *due_at,
                }])
            }
        }
    }

    /// The event that gives the ticket `tags`, if they differ from its own.
    fn retag(&self, actor: &Actor, tags: Vec<String>) -> Result<Vec<TicketEvent>, TicketError> {
        staff_only(actor, "only staff may tag a ticket")?;
        if self.tags == tags {
            return Ok(vec![]);
        }
        Ok(vec![TicketEvent::TagsChanged { tags }])
    }

    /// The event that hands the ticket from its holder to `to`.
    fn assignee_change(&self, to: Option<&str>, to_name: Option<&str>) -> TicketEvent {
        TicketEvent::AssigneeChanged {
            from: self.assignee.as_ref().map(|(id, _)| id.clone()),
            to: to.map(str::to_string),
            to_name: to.map(|id| to_name.unwrap_or(id).to_string()),
        }
    }

    /// A live message the actor may change: its author, or staff. Customers cannot see internal
    /// notes, so for them such a note does not exist.
    fn own_message(&self, message_id: &str, actor: &Actor) -> Result<&MessageState, TicketError> {
        let message = self
            .messages
            .get(message_id)
            .filter(|m| !m.deleted && (actor.is_staff() || !m.internal))
            .ok_or(TicketError::MessageNotFound)?;
        if message.author_id != actor.id && !actor.is_staff() {
            return Err(TicketError::Forbidden(
                "only the author or staff may change a message",
            ));
        }
        Ok(message)
    }

    /// The countdown from staff message `awaiting` still runs: the customer has not answered,
    /// staff have not written again, the ticket is open.
    fn still_waiting(&self, awaiting: &str, closed: bool) -> Result<(), TicketError> {
        if closed {
            return Err(TicketError::TicketClosed);
        }
        if self.awaiting.as_deref() != Some(awaiting) {
            return Err(TicketError::CountdownMoved);
        }
        Ok(())
    }

    fn staff_on_open_ticket(&self, actor: &Actor, closed: bool) -> Result<(), TicketError> {
        if !actor.is_staff() {
            return Err(TicketError::Forbidden(
                "only staff may change a ticket's routing",
            ));
        }
        if closed {
            return Err(TicketError::TicketClosed);
        }
        Ok(())
    }
}

fn system_only(actor: &Actor) -> Result<(), TicketError> {
    if inactivity::is_system(actor) {
        Ok(())
    } else {
        Err(TicketError::Forbidden(
            "only ticketd itself closes inactive tickets",
        ))
    }
}

fn staff_only(actor: &Actor, why: &'static str) -> Result<(), TicketError> {
    if actor.is_staff() {
        Ok(())
    } else {
        Err(TicketError::Forbidden(why))
    }
}

/// `OpenTicket` is answered before the match; this arm exists only to keep the match exhaustive.
fn unreachable_open() -> Result<Vec<TicketEvent>, TicketError> {
    Err(TicketError::TicketAlreadyExists)
}

impl crate::aggregate::Aggregate for Ticket {
    type Command = Command;

    fn version(&self) -> u64 {
        self.version
    }

    fn apply(&mut self, event: &TicketEvent) {
        Ticket::apply(self, event)
    }

    fn decide(&self, command: &Command, actor: &Actor) -> Result<Vec<TicketEvent>, TicketError> {
        Ticket::decide(self, command, actor)
    }
}
