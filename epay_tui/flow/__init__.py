"""What the client does, without a screen: the state of a student's or a staff member's
session and the steps they take, on ``epay_tui.api``. No Textual here."""
