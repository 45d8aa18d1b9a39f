# distributed/absent_without_mpi (cmake -P, registered by tests/distributed/distributed_tests.cmake):
# configures this source tree with -DTAPEGRAD_WITH_MPI=OFF into WORK_DIR and checks that the build needs no
# MPI: TAPEGRAD_HAS_MPI is 0 in tapegrad/version.h, the include root has no distributed/ folder, and no
# target or test of tapegrad::distributed exists (tapegrad_distributed, distributed_*_test, bench_allreduce,
# tests named distributed/...). With -DBUILD=ON it also builds the libraries and tiny_lm there (opt-in:
# `ctest -C mpi-off -L mpi-off`; minutes of compiling).
# Inputs: SOURCE_DIR, WORK_DIR, [LAUNCHER], [BUILD].
foreach(var SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "[without_mpi] ${var} must be given (-D${var}=...)")
  endif()
endforeach()

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[without_mpi] ${what} failed (exit ${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(args -S ${SOURCE_DIR} -B ${WORK_DIR} -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_WITH_MPI=OFF)
if(LAUNCHER)
  list(APPEND args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
run("configure with TAPEGRAD_WITH_MPI=OFF" ${CMAKE_COMMAND} ${args})
if(NOT last_output MATCHES "TAPEGRAD_WITH_MPI=OFF: tapegrad::distributed is not built")
  message(FATAL_ERROR "[without_mpi] the configure step did not report tapegrad::distributed as off:\n${last_output}")
endif()

file(STRINGS ${WORK_DIR}/include/tapegrad/version.h has_mpi REGEX "#define TAPEGRAD_HAS_MPI")
if(NOT has_mpi STREQUAL "#define TAPEGRAD_HAS_MPI 0")
  message(FATAL_ERROR "[without_mpi] version.h says '${has_mpi}', expected '#define TAPEGRAD_HAS_MPI 0'")
endif()
if(EXISTS ${WORK_DIR}/include/tapegrad/distributed)
  message(FATAL_ERROR "[without_mpi] the include root has tapegrad/distributed/ although MPI is off")
endif()

run("list the targets" ${CMAKE_COMMAND} --build ${WORK_DIR} --target help)
string(REGEX MATCHALL "[^\n]*(tapegrad_distributed|distributed_[a-z_]+_test|bench_allreduce|tapegrad_mpi_catch_main)[^\n]*"
       present "${last_output}")
if(present)
  message(FATAL_ERROR "[without_mpi] MPI targets exist although MPI is off: ${present}")
endif()
if(NOT last_output MATCHES "tapegrad_optim")
  message(FATAL_ERROR "[without_mpi] the target list lacks tapegrad_optim; is it the right project?\n${last_output}")
endif()
run("list the tests" ${CMAKE_CTEST_COMMAND} --test-dir ${WORK_DIR} -N)
string(REGEX MATCHALL "[^\n]*(distributed/|distributed_)[^\n]*" present "${last_output}")
if(present)
  message(FATAL_ERROR "[without_mpi] MPI tests exist although MPI is off: ${present}")
endif()
message(STATUS "[without_mpi] configured without MPI: TAPEGRAD_HAS_MPI 0, no distributed targets, headers or tests")

if(BUILD)
  cmake_host_system_information(RESULT cores QUERY NUMBER_OF_LOGICAL_CORES)
  run("build without MPI" ${CMAKE_COMMAND} --build ${WORK_DIR} -j ${cores} --target tapegrad_optim tiny_lm)
  message(STATUS "[without_mpi] the libraries and tiny_lm build without MPI")
endif()
