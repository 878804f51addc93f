#!/usr/bin/env python3
"""The console in a real headless Chromium (Debian's chromium and chromium-driver), driven by
Selenium, with axe-core (shipped by axe-selenium-python) checking each page.

Usage: console_test.py BASE ADMIN ADMIN_PASSWORD SCREENSHOT_DIR (the requester is one the admin creates)
CONSOLE_BOOKINGS (environment) holds the ids of the three pending bookings scripts/browser-test made.
Fails (exit 1) on any step that does not hold, any serious or critical axe violation, a page wider
than a 390 px phone screen, and any error in the browser's console.
"""
import json
import os
import re
import sys
import traceback
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from axe_selenium_python import Axe
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

base, admin, admin_password, shots = sys.argv[1:5]
os.makedirs(shots, exist_ok=True)
ids = json.loads(os.environ["CONSOLE_BOOKINGS"])
# The browser's local time is UTC, so the dates below are the days the bookings fall on.
os.environ["TZ"] = "UTC"

options = webdriver.ChromeOptions()
options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")))
driver.set_page_load_timeout(30)
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def wait(condition, timeout=10):
    # Pages re-render: an element found a moment ago may be gone; look again.
    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(condition)


def visible(element_id, timeout=10):
    return wait(EC.visibility_of_element_located((By.ID, element_id)), timeout)


def text_of(element_id):
    return driver.find_element(By.ID, element_id).text


def status_says(words):
    wait(lambda d: words in d.find_element(By.ID, "status").text)


def page(title):
    """Waits for a page whose heading holds `title`; the focus is on that heading."""
    wait(lambda d: title in d.find_element(By.ID, "page-title").text)
    check(driver.switch_to.active_element.get_attribute("id") == "page-title", f"{title}: the focus is on the page heading")


def accessible(name):
    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in results["violations"] if v["impact"] in ("serious", "critical")]
    check(not bad, f"{name}: axe-core found serious or critical violations: {bad}")


def screenshot(name):
    driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def shown(name):
    """Every page: a screenshot and an accessibility check."""
    screenshot(name)
    accessible(name)


def nav(link_text):
    # Keyboard only: Enter on the navigation's link.
    driver.find_element(By.LINK_TEXT, link_text).send_keys(Keys.ENTER)


def goto(fragment, title):
    driver.execute_script("location.hash = arguments[0]", fragment)
    page(title)


def on_a_phone(pages):
    """Each page at 390×844: no page-wide sideways scrolling, accessible, a screenshot."""
    driver.set_window_size(390, 844)
    try:
        for fragment, title, name in pages:
            goto(fragment, title)
            wait(lambda d: not d.find_elements(By.XPATH, "//p[.='Loading…']"))
            width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            check(width[0] <= width[1], f"{name} on a phone: the page is {width[0]} px wide in a {width[1]} px window")
            shown(f"phone-{name}")
    finally:
        driver.set_window_size(1280, 900)


def row_with(table_id, words):
    return [r for r in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tr") if words in r.text][0]


def log_in(username, password):
    visible("username").send_keys(username)
    # Keyboard only: Enter in the password field submits the form.
    driver.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    visible("view")


def day(days_ahead):
    return (datetime.now(timezone.utc) + timedelta(days=days_ahead)).strftime("%Y-%m-%d")


try:
    driver.get(base + "/")
    visible("login")
    check(driver.current_url == base + "/app/", f"/ led to {driver.current_url}, not /app/")
    check(driver.switch_to.active_element.get_attribute("id") == "username", "the username field has the focus")
    shown("login")

    # The admin lands on the queue of pending bookings; the navigation shows the admin's pages.
    log_in(admin, admin_password)
    page("Queue")
    check(f"Signed in as {admin} (admin)" in text_of("who"), "the admin's name and role are shown")
    check(text_of("nav").split("\n") == ["Queue", "Users", "Webhooks", "Calendar feeds"], f"the admin's pages in the navigation: {text_of('nav')!r}")
    wait(lambda d: d.find_elements(By.ID, "rows"))
    for topic in ("Console check", "Overlapping request", "Another request"):
        check(topic in text_of("rows"), f"the pending booking {topic!r} is listed")
    check(driver.execute_script("return localStorage.length + sessionStorage.length") == 0, "nothing in web storage")
    shown("admin-queue")

    # Accept one; the overlapping one is then refused, with a link to the booking in the way.
    visible(f"accept-{ids['first']}").click()
    status_says("accepted")
    visible(f"accept-{ids['overlap']}").click()
    link = visible("conflict-link")
    check(link.get_attribute("href").endswith(f"#/booking/{ids['first']}"), "the overlap links to the accepted booking")
    check("overlaps accepted booking" in text_of("status"), "the overlap is explained")
    check(driver.switch_to.active_element.get_attribute("id") == "status", "the focus is on the outcome, just before its link")
    screenshot("admin-overlap")
    # The overlap's link opens the booking in the way.
    link.send_keys(Keys.ENTER)
    page("Console check")
    check("accepted" in text_of("booking-facts"), "the accepted booking's page shows its status")
    nav("Queue")
    page("Queue")
    # Reject the third with a note.
    visible(f"note-{ids['other']}").send_keys("No room that day")
    visible(f"reject-{ids['other']}").click()
    status_says("rejected")
    check(not driver.find_elements(By.ID, f"booking-{ids['other']}"), "the rejected booking left the pending queue")

    # The filter: the rejected one, then everything on its day only.
    Select(visible("q-status")).select_by_value("rejected")
    driver.find_element(By.CSS_SELECTOR, "#queue-filters button[type=submit]").click()
    wait(lambda d: "status=rejected" in d.current_url and d.find_elements(By.ID, f"booking-{ids['other']}"))
    check("rejected" in text_of(f"booking-{ids['other']}"), "the rejected filter shows the rejected booking")
    Select(visible("q-status")).select_by_value("all")
    for field in ("q-from", "q-to"):
        driver.execute_script("arguments[0].value = arguments[1]", visible(field), day(31))
    driver.find_element(By.CSS_SELECTOR, "#queue-filters button[type=submit]").click()
    wait(lambda d: "status=all" in d.current_url and d.find_elements(By.ID, f"booking-{ids['other']}"))
    check(not driver.find_elements(By.ID, f"booking-{ids['first']}"), "a booking on another day is filtered out")
    shown("admin-queue-filtered")
    # Paging, two to a page: the three bookings take two pages.
    goto("#/queue?status=all&limit=2", "Queue")
    wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == 2)
    first_page = text_of("rows")
    order = [r.get_attribute("id") for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr")]
    check(order == [f"booking-{ids['first']}", f"booking-{ids['overlap']}"], f"oldest event first, ties by id: {order}")
    visible("next-page").send_keys(Keys.ENTER)
    wait(lambda d: "cursor=" in d.current_url and len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == 1)
    check(not driver.find_elements(By.ID, "next-page"), "the last page has no next page")
    check(text_of("rows") not in first_page, "the second page holds the third booking")
    visible("first-page").send_keys(Keys.ENTER)
    wait(lambda d: "cursor=" not in d.current_url and len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == 2)
    goto(f"#/queue?status=all&from={day(31)}&to={day(31)}", "Queue")
    wait(lambda d: d.find_elements(By.ID, f"booking-{ids['other']}"))

    # The rejected booking's page: its fields and history, then delete it (confirmed in the page).
    driver.find_element(By.CSS_SELECTOR, f"#booking-{ids['other']} a").send_keys(Keys.ENTER)
    page("Another request")
    wait(lambda d: d.find_elements(By.ID, "history"))
    history = text_of("history")
    check("reject" in history and "No room that day" in history, f"the history lists the decision and its note: {history!r}")
    check("someone@example.com" in text_of("booking-facts"), "the booking's fields are shown")
    shown("admin-booking")
    visible("delete").click()
    check(driver.switch_to.active_element.get_attribute("id") == "delete-confirm", "deleting asks again, with the focus on Confirm")
    visible("delete-confirm").send_keys(Keys.ENTER)
    page("Queue")
    check("deleted" in text_of("status"), "the deletion is confirmed")
    wait(lambda d: d.find_elements(By.ID, "rows"))
    check(not driver.find_elements(By.ID, f"booking-{ids['other']}"), "the deleted booking is gone")

    # Users: create a requester (one-time password with a copy button); a taken name is marked.
    nav("Users")
    page("Users")
    wait(lambda d: d.find_elements(By.ID, "user-rows"))
    visible("u-username").send_keys("newbie")
    driver.find_element(By.CSS_SELECTOR, "#new-user button[type=submit]").click()
    visible("new-password")
    new_password = text_of("new-password-value")
    check(len(new_password) >= 12, "a one-time password is shown")
    check(driver.find_element(By.ID, "copy-new-password").is_displayed(), "with a copy button")
    screenshot("admin-user-created")
    visible("u-username").send_keys("newbie")
    driver.find_element(By.CSS_SELECTOR, "#new-user button[type=submit]").click()
    wait(lambda d: d.find_element(By.ID, "u-username").get_attribute("aria-invalid") == "true")
    check("exists" in text_of("e-u-username"), "a taken username is marked at the field")
    check(not driver.find_elements(By.ID, "new-password"), "the earlier password is no longer shown")

    # Import two users from CSV: each gets a generated password, shown once.
    visible("import-csv").send_keys("carol,requester\ndave,requester")
    driver.find_element(By.CSS_SELECTOR, "#import button[type=submit]").click()
    wait(lambda d: d.find_elements(By.ID, "import-rows"))
    imported = driver.find_elements(By.CSS_SELECTOR, "#import-rows tr")
    check(len(imported) == 2 and all("created" in r.text for r in imported), "two users imported")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#import-rows code")) == 2, "with their one-time passwords")
    status_says("2 created")
    wait(lambda d: "dave" in d.find_element(By.ID, "user-rows").text)

    # The last enabled admin cannot disable themselves: the 409 is shown plainly.
    row_with("user-rows", admin).find_element(By.CSS_SELECTOR, "button[id^=toggle-]").click()
    status_says("Refused")
    # Make carol an admin; disable dave; reset dave's password.
    carol = row_with("user-rows", "carol")
    Select(carol.find_element(By.CSS_SELECTOR, "select")).select_by_value("admin")
    carol.find_element(By.CSS_SELECTOR, "button[id^=save-role-]").click()
    status_says("carol is now admin")
    row_with("user-rows", "dave").find_element(By.CSS_SELECTOR, "button[id^=toggle-]").click()
    status_says("dave is disabled")
    check("disabled" in row_with("user-rows", "dave").text, "dave shows as disabled")
    row_with("user-rows", "dave").find_element(By.CSS_SELECTOR, "button[id^=reset-]").click()
    visible("reset-password")
    check(len(text_of("reset-password-value")) >= 12, "the reset password is shown once")
    shown("admin-users")

    # Webhooks: add one (its secret shown once), ping it, see the delivery, retry it.
    nav("Webhooks")
    page("Webhooks")
    visible("wh-url").send_keys("http://127.0.0.1:9/hook")
    driver.find_element(By.ID, "wh-all").click()
    driver.find_element(By.ID, "wh-description").send_keys("console test")
    driver.find_element(By.CSS_SELECTOR, "#new-webhook button[type=submit]").click()
    visible("webhook-secret")
    check(text_of("webhook-secret-value").startswith("whsec_"), "the signing secret is shown")
    shown("admin-webhooks")
    hook = driver.find_element(By.CSS_SELECTOR, "#webhook-rows tr").get_attribute("id").split("-")[1]
    visible(f"ping-{hook}").click()
    status_says("Ping sent")
    driver.find_element(By.CSS_SELECTOR, f"#webhook-{hook} a").send_keys(Keys.ENTER)
    page(f"Webhook #{hook}")
    for _ in range(20):
        if driver.find_elements(By.ID, "delivery-rows") and "webhook.ping" in text_of("delivery-rows"):
            break
        visible("refresh-deliveries").click()
        status_says("refreshed")
        driver.execute_script("document.getElementById('status').textContent = ''")
    check("webhook.ping" in text_of("delivery-rows"), "the ping is among the deliveries")
    shown("admin-webhook-deliveries")
    driver.find_element(By.CSS_SELECTOR, "#delivery-rows button[id^=retry-]").click()
    status_says("sent again")

    # Calendar feeds: create (its absolute address shown once), it works; revoke, it stops.
    nav("Calendar feeds")
    page("Calendar feeds")
    visible("feed-name").send_keys("Team calendar")
    driver.find_element(By.CSS_SELECTOR, "#new-feed button[type=submit]").click()
    visible("feed-url")
    feed_url = text_of("feed-url-value")
    check(re.fullmatch(re.escape(base) + r"/calendar-feeds/[^/]+\.ics", feed_url) is not None, f"the feed's whole address is shown: {feed_url}")
    check(urllib.request.urlopen(feed_url).status == 200, "the feed answers")
    shown("admin-feeds")
    feed = driver.find_element(By.CSS_SELECTOR, "#feed-rows tr").get_attribute("id").split("-")[1]
    visible(f"revoke-{feed}").click()
    visible(f"revoke-{feed}-confirm").click()
    status_says("revoked")
    try:
        urllib.request.urlopen(feed_url)
        check(False, "a revoked feed no longer answers")
    except urllib.error.HTTPError as error:
        check(error.code == 404, "a revoked feed answers 404")

    on_a_phone([
        ("#/queue", "Queue", "admin-queue"),
        (f"#/booking/{ids['first']}", "Console check", "admin-booking"),
        ("#/users", "Users", "admin-users"),
        ("#/webhooks", "Webhooks", "admin-webhooks"),
        (f"#/webhooks/{hook}", f"Webhook #{hook}", "admin-webhook-deliveries"),
        ("#/feeds", "Calendar feeds", "admin-feeds"),
    ])

    # A reload keeps the session (the HttpOnly refresh cookie) and the page, without the password.
    goto("#/users", "Users")
    driver.refresh()
    page("Users")
    check(not driver.find_element(By.ID, "login").is_displayed(), "still signed in after a reload")

    driver.find_element(By.ID, "logout").click()
    visible("login")
    driver.refresh()
    visible("login")
    check(not driver.find_element(By.ID, "view").is_displayed(), "logged out for good after a reload")

    # The requester the admin created logs in with the one-time password: their own pages only.
    driver.get(base + "/app/")
    log_in("newbie", new_password)
    page("My bookings")
    check(text_of("nav").split("\n") == ["Request a booking", "My bookings"], f"a requester's navigation: {text_of('nav')!r}")
    goto("#/users", "My bookings")
    check("Users" not in text_of("nav"), "no user administration for a requester")
    shown("requester-mine")

    # Before submitting: the calendar's busy times, for the day they pick.
    nav("Request a booking")
    page("Request a booking")
    wait(lambda d: d.find_elements(By.ID, "availability-free") or d.find_elements(By.CSS_SELECTOR, "#availability-list li"))

    def fill(values):
        for field, value in values.items():
            element = visible(f"f-{field}")
            driver.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'))", element, value)
    fill({"topic": "", "event_time": f"{day(30)}T10:30", "duration_minutes": "90", "address-street": "1 Main St",
          "address-city": "Oslo", "address-country": "Atlantis", "requested_by": "rita@example.com"})
    wait(lambda d: d.find_elements(By.ID, "availability-clash"))
    check(len(driver.find_elements(By.CSS_SELECTOR, "#availability-list li")) == 1, "the accepted booking's time shows as busy that day")
    # A submission with an empty topic and an unknown country: each field marked where it is.
    driver.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    visible("e-f-topic")
    check(driver.find_element(By.ID, "f-topic").get_attribute("aria-invalid") == "true", "the topic is marked invalid")
    check("Atlantis" in visible("e-f-address-country").text, "the country's error names the value")
    check(driver.find_element(By.ID, "f-requested_by").get_attribute("aria-invalid") is None, "valid fields are not marked")
    check(driver.switch_to.active_element.get_attribute("id") == "f-topic", "the focus is on the first invalid field")
    shown("requester-submit")
    fill({"topic": "Book launch", "address-country": "Norway", "event_time": f"{day(32)}T10:30"})
    driver.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    page("My bookings")
    status_says("submitted")
    wait(lambda d: d.find_elements(By.ID, "rows") and "Book launch" in d.find_element(By.ID, "rows").text)
    row_with("rows", "Book launch").find_element(By.CSS_SELECTOR, "button[id^=cancel-]").click()
    status_says("cancelled")
    wait(lambda d: "cancelled" in row_with("rows", "Book launch").text)
    shown("requester-cancelled")
    row_with("rows", "Book launch").find_element(By.CSS_SELECTOR, "a").send_keys(Keys.ENTER)
    page("Book launch")
    check("cancelled" in text_of("booking-facts"), "their booking's page shows its status")
    check(not driver.find_elements(By.ID, "delete") and not driver.find_elements(By.ID, "history"), "no delete, no history for a requester")
    shown("requester-booking")
    on_a_phone([("#/mine", "My bookings", "requester-mine"), ("#/submit", "Request a booking", "requester-submit")])

    # Errors in the page. Chrome also reports each HTTP error answer as a console line; the 409
    # and 422 that this test provokes on purpose are the only ones allowed.
    provoked = re.compile(r"Failed to load resource: the server responded with a status of (409|422)")
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and not provoked.search(entry["message"])]
    check(not errors, f"errors in the browser console: {errors}")
except Exception as error:  # a step that timed out or an element that is missing
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == __file__]
    failures.append(f"lines {lines}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    screenshot("failure")
finally:
    driver.quit()

print(json.dumps({"failures": failures}, indent=1))
sys.exit(1 if failures else 0)
