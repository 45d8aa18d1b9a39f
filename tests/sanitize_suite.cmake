# The opt-in sanitizer run (CTest label `sanitize`): configures the `asan` preset into BUILD_DIR, builds
# everything and runs the whole suite there. Any ASan, LSan or UBSan report (float-cast-overflow
# included) aborts its test, so this script fails if the suite is not clean.
#   cmake -DSOURCE_DIR=<repo> -DBUILD_DIR=<dir> [-DLAUNCHER=ccache] [-DJOBS=2] -P sanitize_suite.cmake
if(NOT SOURCE_DIR OR NOT BUILD_DIR)
  message(FATAL_ERROR "sanitize_suite.cmake needs -DSOURCE_DIR=... and -DBUILD_DIR=...")
endif()
if(NOT JOBS)
  set(JOBS 2)
endif()
set(configure_args --preset asan -B ${BUILD_DIR} -DTAPEGRAD_BUILD_BENCH=OFF)   # benches are not tests
if(LAUNCHER)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()

function(step what)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${SOURCE_DIR} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "sanitizer run: ${what} failed (${rc})")
  endif()
endfunction()

step("configuring the asan preset" ${CMAKE_COMMAND} ${configure_args})
step("building" ${CMAKE_COMMAND} --build ${BUILD_DIR} --parallel ${JOBS})
step("the test suite under ASan + UBSan" ${CMAKE_CTEST_COMMAND} --test-dir ${BUILD_DIR} --output-on-failure -j ${JOBS})
message(STATUS "sanitizer run: the whole suite is clean under ASan + UBSan + float-cast-overflow")
