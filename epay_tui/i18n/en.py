"""English."""

MESSAGES: dict[str, str] = {
    # app
    "app.title": "CZIE Fee Payment",
    "app.sandbox": "SANDBOX",
    "app.starting": "Starting the demo backend…",
    "app.busy": "The network is busy, please try again",
    "app.busy_retrying": "The network is busy; retrying in {seconds} s (any key retries now)",
    "app.retry": "Retry",
    "app.user": "{name} ({username})",
    "app.help_title": "Help",
    "app.help_close": "Esc or Enter closes",
    "app.language_switched": "Switched to English",
    "key.help": "Help",
    "key.language": "中文",
    "key.quit": "Quit",
    "key.back": "Back",
    "key.next_field": "Next",
    "key.submit": "Submit",
    "key.select": "Select",
    # login
    "login.title": "Student payment login",
    "login.username": "Student No.",
    "login.password": "Password",
    "login.captcha": "Captcha",
    "login.refresh": "New captcha",
    "login.submit": "Login",
    "login.forgot": "Forgot password",
    "login.hint": "Initial password: last six characters of your ID card + Czgc",
    "login.hours": "Payment hours {opens}-{closes}",
    "login.payee": "The payee is always {payee}",
    "login.notices_line": "{hours} · {payee}",
    "login.missing": "Enter your student number, password and captcha",
    "login.loading": "Loading…",
    "login.working": "Logging in…",
    # password change
    "password.title": "Change password",
    "password.old": "Current password",
    "password.new": "New password",
    "password.confirm": "Confirm new password",
    "password.submit": "OK",
    "password.forced_initial": "First login: replace the initial password with a new one",
    "password.forced_weak": "Your password is too weak: please change it",
    "password.mismatch": "The two new passwords differ",
    "password.refused": "The new password fails: {items}",
    "password.done": "Password changed",
    "password.missing": "Fill in every password field",
    "rule.TOO_SHORT": "8-32 characters",
    "rule.TOO_LONG": "8-32 characters",
    "rule.NEEDS_LETTER": "a letter",
    "rule.NEEDS_DIGIT": "a digit",
    "rule.CONTAINS_USERNAME": "not your student No.",
    "rule.INITIAL_PATTERN": "not the initial pattern",
    "rule.COMMON": "not a common password",
    "rule.SAME_AS_OLD": "not the old password",
    # reset
    "reset.title": "Reset password",
    "reset.step1": "Step 1: who you are",
    "reset.step2": "Step 2: get a code",
    "reset.step3": "Step 3: new password",
    "reset.name": "Name",
    "reset.id_card": "ID card No.",
    "reset.next": "Next",
    "reset.channel_sms": "SMS {to}",
    "reset.channel_email": "E-mail {to}",
    "reset.send": "Get code",
    "reset.resend_in": "New code in {seconds} s",
    "reset.sent": "Code sent to {to}",
    "reset.code": "Code",
    "reset.submit": "OK",
    "reset.no_contact": "No phone or e-mail on file: please go to the helpdesk to reset it",
    "reset.done": "Password reset: log in with the new password",
    "reset.missing": "Fill in every field",
    # menu
    "menu.title": "≡ Menu",
    "menu.fees": "Pay fees",
    "menu.orders": "My orders",
    "menu.profile": "Profile",
    "menu.password": "Change password",
    "menu.logout": "Log out",
    "menu.coming": "Coming soon",
    "menu.logged_out": "Logged out",
    # profile
    "profile.title": "Profile",
    "profile.name": "Name",
    "profile.username": "Student No.",
    "profile.department": "Department",
    "profile.major": "Major",
    "profile.class_name": "Class",
    "profile.id_card": "ID card No.",
    "profile.phone": "Phone",
    "profile.email": "E-mail",
    "profile.current_password": "Current password",
    "profile.save": "Save",
    "profile.saved": "Profile saved",
    "profile.ok": "✓",
    "profile.incomplete": "Phone or e-mail is wrong: fix your profile before paying",
    "profile.needs_password": "Changing contacts needs your current password",
    "profile.unchanged": "Nothing to save",
    "problem.PHONE_MISSING": "Phone number missing",
    "problem.PHONE_INVALID": "11 digits, starting 13-19",
    "problem.EMAIL_MISSING": "E-mail missing",
    "problem.EMAIL_INVALID": "Not a valid e-mail address",
    # errors
    "error.CAPTCHA_INVALID": "Wrong or expired captcha: here is a new one",
    "error.BAD_CREDENTIALS": "Wrong student number or password: {attempts_left} attempts left",
    "error.ACCOUNT_LOCKED": "Too many failed attempts: locked until {until}. Use Forgot password",
    "error.UNAUTHENTICATED": "Your session has ended: please log in again",
    "error.PASSWORD_CHANGE_REQUIRED": "Change your password first",
    "error.WEAK_PASSWORD": "The new password fails: {items}",
    "error.FORBIDDEN": "This account may not use this",
    "error.RESET_IDENTITY_MISMATCH": "Student number, name or ID card number do not match",
    "error.RATE_LIMITED": "Too many tries: wait {retry_after} s",
    "error.RESET_CODE_INVALID": "Wrong code",
    "error.RESET_EXPIRED": "This reset has expired: start again",
    "error.PROFILE_INCOMPLETE": "Phone or e-mail is wrong: fix your profile before paying",
    "error.OUTSIDE_PAYMENT_HOURS": "Payments are open {opens}-{closes} only",
    "error.MIXED_RECEIPT_TYPES": (
        "Tuition and accommodation carry another receipt type and cannot be paid with other fees"
    ),
    "error.ITEM_ALREADY_PAID": "A selected fee is already paid",
    "error.ITEM_IN_OPEN_ORDER": "A selected fee is in unfinished order {order_no}",
    "error.ITEM_NOT_FOUND": "No such fee",
    "error.ORDER_NOT_FOUND": "No such order",
    "error.STUDENT_NOT_FOUND": "No such student",
    "error.IDEMPOTENCY_KEY_REUSED": "The order could not be submitted: go back and select again",
    "error.IDEMPOTENCY_IN_PROGRESS": "The order is being submitted, please wait",
    "error.ORDER_ALREADY_PAID": "This order is already paid",
    "error.PAYMENT_IN_PROGRESS": "A payment for this order is in progress: do not pay again",
    "error.ORDER_NOT_OPEN": "This order is finished",
    "error.VALIDATION_ERROR": "Something you entered is not valid",
    "error.NETWORK_ERROR": "The network is busy, please try again",
    "error.TIMEOUT": "The network is busy, please try again",
    "error.BAD_RESPONSE": "The network is busy, please try again",
    "error.INTERNAL_ERROR": "The system is busy, please try again",
    "error.UNKNOWN": "That did not work ({code}); try again or ask the helpdesk",
    # help
    "help.login": (
        "Tab / Shift+Tab move Student No. → Password → Captcha → Login → Forgot password;"
        " Enter in the captcha logs in.\nCtrl+R shows a new captcha.\n"
        "The initial password is the last six characters of your ID card + Czgc;"
        " the first login asks for a new one.\nF2 switches to 中文; Ctrl+Q quits."
    ),
    "help.password": (
        "As you type, the checklist ticks: 8-32 characters, a letter, a digit, not your"
        " student No., not the initial pattern, not a common password.\n"
        "Enter in the last field submits; Esc goes back."
    ),
    "help.reset": (
        "Step 1 checks student No., name and ID card No.; step 2 sends a code by SMS or"
        " e-mail (again after 60 s); step 3 takes the code and the new password.\n"
        "With no phone or e-mail on file, go to the helpdesk. Esc goes back to login."
    ),
    "help.menu": (
        "Press 1-5, or arrows and Enter.\nCheck your phone and e-mail in Profile before paying."
    ),
    "help.profile": (
        "Phone and e-mail can be changed; saving asks for your current password.\n"
        "The e-receipt goes to both, so both must be valid to pay. Esc goes back to the menu."
    ),
}
